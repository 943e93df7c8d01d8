"""Settings declared once (``dynadex.settings``): every ``DYNADEX_`` name the source mentions is declared and
read somewhere, docs/settings.md's table is the generated one, a bad value fails naming the variable and the value,
and ``SyncSettings`` and the emulator's ``Knobs`` take their defaults from the declarations."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from dynadex import settings
from dynadex.errors import DynadexError, SettingError
from tests.support.paths import REPO

ROOT = REPO
SOURCE = [ROOT / "include", ROOT / "plugins", ROOT / "dags"]
NAME = re.compile(r"\bDYNADEX_[A-Z0-9_]*")


def _source_files() -> list[Path]:
    return sorted(p for root in SOURCE for p in root.rglob("*.py"))


def test_every_name_in_the_source_is_declared():
    """A name composed at run time (``f"DYNADEX_{x}"``) shows as its prefix and is refused too; prose may
    speak of a family (``DYNADEX_*``, ``DYNADEX_LOCAL_AWS_<NAME>``)."""
    undeclared = []
    for path in _source_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            undeclared += [f"{path.relative_to(ROOT)}:{n}: {m.group()}" for m in NAME.finditer(line)
                           if m.group() not in settings.SETTINGS and line[m.end():m.end() + 1] not in ("*", "<")]
    assert not undeclared, "declare these in include/dynadex/settings.py:\n" + "\n".join(undeclared)


def test_every_declaration_is_read_somewhere():
    declared = {name: value for name, value in vars(settings).items() if isinstance(value, settings.Setting)}
    assert sorted(s.env for s in declared.values()) == sorted(settings.SETTINGS)
    text = "\n".join(p.read_text() for p in _source_files() if p.name != "settings.py" or p.parent.name != "dynadex")
    unread = [f"{s.env} (settings.{name})" for name, s in declared.items()
              if not re.search(rf"\b(settings|declared)\.{name}\b", text)]
    assert not unread, "declared but never read:\n" + "\n".join(unread)


def test_readme_holds_the_generated_table():
    readme = (ROOT / "docs" / "settings.md").read_text()
    assert settings.block(readme) == settings.readme_block(), "docs/settings.md's table is stale: make settings-doc"
    assert settings.with_table(readme) == readme


def test_the_table_names_every_setting_once_by_group(capsys):
    assert settings.main(["--markdown"]) == 0
    table = capsys.readouterr().out
    assert table == settings.markdown()
    rows = [line for line in table.splitlines() if line.startswith("| `DYNADEX_")]
    assert [row.split("`")[1] for row in rows] == [s.env for g in settings.GROUPS for s in settings.group(g)]
    assert sorted(row.split("`")[1] for row in rows) == sorted(settings.SETTINGS)
    assert "| `DYNADEX_EXPORT_POLL_SECONDS` | float | `10` |" in table
    assert "| `DYNADEX_STORE` | str | unset |" in table and "| `DYNADEX_CATALOG_HOLD` | bool | `1` |" in table
    assert [line for line in table.splitlines() if line.startswith("**")] == \
        [f"**{g}**: {what}." for g, what in settings.GROUPS.items()]


def test_readme_block_is_rewritten_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Settings\n\n{settings.BEGIN}\nold\n{settings.END}\n\n## Next\n")
    assert settings.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text == f"# x\n\n## Settings\n\n{settings.BEGIN}\n{settings.readme_block()}{settings.END}\n\n## Next\n"
    assert settings.main(["--readme", str(readme)]) == 0 and readme.read_text() == text  # idempotent
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="settings:begin"):
        settings.main(["--readme", str(readme)])


@pytest.mark.parametrize("env, raw, message", [
    ("DYNADEX_BATCH_RECORDS", "abc", "DYNADEX_BATCH_RECORDS='abc' is not an integer (default 10000)"),
    ("DYNADEX_TASK_RETRIES", "2.5", "DYNADEX_TASK_RETRIES='2.5' is not an integer (default 2)"),
    ("DYNADEX_EXPORT_POLL_SECONDS", "soon", "DYNADEX_EXPORT_POLL_SECONDS='soon' is not a number (default 10)"),
    ("DYNADEX_UNPAUSE_SYNC", "maybe",
     "DYNADEX_UNPAUSE_SYNC='maybe' is not a boolean (1/0, true/false, yes/no, on/off) (default 1)"),
    ("DYNADEX_BUILD_THREADS", "all", "DYNADEX_BUILD_THREADS='all' is not an integer (default unset)"),
])
def test_a_bad_value_fails_naming_the_variable_and_the_value(monkeypatch, env, raw, message):
    monkeypatch.setenv(env, raw)
    with pytest.raises(SettingError) as caught:
        settings.SETTINGS[env].read()
    assert str(caught.value) == message
    assert isinstance(caught.value, DynadexError) and isinstance(caught.value, ValueError)  # CLI: one line, exit 1


def test_a_bad_value_fails_where_it_is_used(monkeypatch):
    """Where the sync and the emulator take their settings: the first bad one stops them, named."""
    from dynadex.local_aws.config import Knobs
    from dynadex.stream.sync import SyncSettings

    monkeypatch.setenv("DYNADEX_SHARD_READERS", "sixteen")
    with pytest.raises(SettingError, match=r"^DYNADEX_SHARD_READERS='sixteen' is not an integer"):
        SyncSettings()
    monkeypatch.setenv("DYNADEX_LOCAL_AWS_EXPORT_SECONDS", "5s")
    with pytest.raises(SettingError, match=r"^DYNADEX_LOCAL_AWS_EXPORT_SECONDS='5s' is not a number"):
        Knobs.from_env()


def test_settings_are_read_when_used(monkeypatch):
    setting = settings.SYNC_RUN_SECONDS
    monkeypatch.delenv(setting.env, raising=False)
    assert setting.read() == 3600.0 and setting.read(default=30) == 30
    monkeypatch.setenv(setting.env, "120")
    assert setting.read() == 120.0 and setting.read(default=30) == 120.0
    monkeypatch.setenv(setting.env, "  ")  # empty: the default
    assert setting.read() == 3600.0


@pytest.mark.parametrize("setting, raw, value", [
    (settings.BATCH_RECORDS, "1e4", 10000),  # the sync always parsed its integers as floats
    (settings.LOCAL_AWS_EXPORT_FILES, "8.0", 8),
    (settings.AT_TIMESTAMP, "0.0", False),  # the sync's switches: a number, 0 is off
    (settings.AT_TIMESTAMP, "2", True),
    (settings.CATALOG_HOLD, "off", False),
    (settings.UNPAUSE_SYNC, "False", False),
    (settings.UNPAUSE_SYNC, "yes", True),
    (settings.OWNER, " data-team ", "data-team"),
])
def test_values_parse_as_before(monkeypatch, setting, raw, value):
    monkeypatch.setenv(setting.env, raw)
    got = setting.read()
    assert got == value and type(got) is type(value)


def test_sync_settings_are_the_sync_group(monkeypatch):
    from dynadex.store.catalog import lake
    from dynadex.stream.sync import SyncSettings

    bound = {f.name: f.metadata["setting"] for f in fields(SyncSettings) if "setting" in f.metadata}
    assert sorted(s.env for s in bound.values()) == sorted(s.env for s in settings.SETTINGS.values()
                                                         if s.group in ("sync", "exports"))
    for setting in bound.values():
        monkeypatch.delenv(setting.env, raising=False)
    made = SyncSettings()
    for name, setting in bound.items():
        expected = setting.default if name != "flush_every_batches" or lake.INLINE_ROWS else 0
        assert getattr(made, name) == expected and type(getattr(made, name)) is type(setting.default), name
    assert made.export_poll_seconds == 10.0  # the one default of the DAG's wait and the sync's recovery
    monkeypatch.setenv("DYNADEX_BATCH_SECONDS", "0.05")
    assert SyncSettings().batch_seconds == 0.05 and SyncSettings(batch_seconds=2).batch_seconds == 2


def test_knobs_are_the_emulator_group(monkeypatch):
    from dynadex.local_aws.config import Knobs

    knobs = fields(Knobs)
    assert [Knobs.setting(f).env for f in knobs] == [s.env for s in settings.group("emulator")]
    assert all(Knobs.setting(f).env == f"DYNADEX_LOCAL_AWS_{f.name.upper()}" for f in knobs)
    for f in knobs:
        monkeypatch.delenv(Knobs.setting(f).env, raising=False)
    assert Knobs.from_env() == Knobs() and Knobs().export_seconds == 5.0 and Knobs().stream_shards == 4
    monkeypatch.setenv("DYNADEX_LOCAL_AWS_STREAM_SHARDS", "8")
    assert Knobs.from_env().stream_shards == 8 and Knobs.from_env(stream_shards=2.0).stream_shards == 2
