"""The export's item structure as DuckDB types it, and the raw-text check of JSON types.

DuckDB parses each line with ``from_json`` into a struct whose type is the
export's own attribute structure (``json_group_structure`` over a seeded
sample, refined from lines the sample missed). ``from_json`` converts
silently where JSON types disagree, so the raw text of every line is also
checked by one RE2 scan (``wrong_json_type``).

Invariant: a structure only ever holds what DynamoDB JSON allows, at most
FAST_MAX_DEPTH levels of maps and lists, names of at most 64 KB (``clean``);
anything else is pruned, so lines holding it regenerate shorter than they
are and the length guard (``fast_sql``) sends them to the exact Python path.
"""

from __future__ import annotations

import json

from dynadex.limits import MAX_NAME_BYTES
from dynadex.store.errors import OutsideFastPath
from dynadex.store.layout.names import literal, quote

SAMPLE_HEAD, SAMPLE_ROWS = 1_000, 20_000  # the structure comes from the first lines plus a seeded sample
# A chunk that starts from what the build's earlier chunks found (``structure_seed``) samples this many rows
# beyond its head: what the seed and this smaller sample miss costs a parse round (the guard), not a wrong file
SEEDED_SAMPLE_ROWS = 2_000
_SCALAR = {"S": "VARCHAR", "N": "VARCHAR", "B": "VARCHAR", "BOOL": "BOOLEAN", "NULL": "BOOLEAN"}
SETS = ("SS", "NS", "BS")
# Deeper structures take DuckDB time that doubles every level or two past ~20 (measured: 2 s at 18 levels,
# 18 s at 26, minutes at DynamoDB's 32); lines nested deeper than this go to the Python share instead.
FAST_MAX_DEPTH = 16
# A value of the wrong JSON type anywhere in a line: from_json converts silently (5 -> '5' for a VARCHAR,
# "true" -> true for a BOOLEAN, 12 or [] -> a struct of NULLs for a map), so the raw text is checked, once,
# by RE2. Every type tag of a line appears literally in it ("\u" escapes are refused, and inside a string a
# quote is always escaped), so each tag's value is seen whatever its nesting; a match inside a string can
# only refuse a good line (it then goes to Python), never admit a bad one.
_WS = r"[ \t\r]*"
_STR = r'"(?:[^"\\]|\\.)*"'
TAGS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
_STARTS = {"S": '"', "N": '"', "B": '"', "BOOL": "tf", "NULL": "tf", "M": "{", "L": "\\[", "SS": "\\[", "NS": "\\[",
           "BS": "\\["}


def wrong_json_type(names_like_tags: frozenset = frozenset()) -> str:
    """The RE2 pattern of a tag followed by a value of the wrong JSON type.

    An attribute or map field may be named like a tag ("S", "L", …): ``"S":{`` is then that name, before its
    attribute value. For such names ``{`` is left out here, and ``name_counts_equal`` checks instead that
    the line holds as many ``"S":{`` as its regenerated text, which writes them only for names."""
    def bad(tag: str) -> str:
        return "[^" + _STARTS[tag] + ("{" if tag in names_like_tags and tag != "M" else "") + " \\t\\r]"

    parts = [rf'"{tag}"{_WS}:{_WS}{bad(tag)}' for tag in ("S", "N", "B", "BOOL", "NULL", "M", "L")]
    for tag in ("SS", "NS", "BS"):  # an array of strings
        parts.append(rf'"{tag}"{_WS}:{_WS}(?:{bad(tag)}|\[{_WS}(?:{_STR}{_WS},{_WS})*(?:[^" \t\r]|{_STR}{_WS}[^, \t\r\]]))')
    return "|".join(parts)


WRONG_JSON_TYPE = wrong_json_type()


def names(structure: dict, out: set) -> set:
    """Every attribute and map field name of the structure (at any depth, inside lists too)."""
    for name, av in structure.items():
        out.add(name)
        av_names(av, out)
    return out


def av_names(av, out: set) -> None:
    if not isinstance(av, dict):
        return
    if isinstance(av.get("M"), dict):
        names(av["M"], out)
    if isinstance(av.get("L"), list) and av["L"] and av["L"][0] != "NULL":
        av_names(av["L"][0], out)


def name_counts_equal(tags) -> list[str]:
    """Per tag named like an attribute: the raw line and the regenerated item hold as many ``"T":{``."""
    checks = []
    for tag in sorted(tags):
        raw_pattern = lit('"' + tag + '"' + _WS + ":" + _WS + "\\{")
        raw = f"len(regexp_extract_all(line, {raw_pattern}))"
        name = lit('"' + tag + '":{')
        regen = f"(strlen(item) - strlen(replace(item, {name}, ''))) // {len(tag) + 4}"
        checks.append(f"{raw} = {regen}")
    return checks



lit = literal  # a SQL string literal
ident = quote  # a quoted SQL identifier



def merge(a, b):
    """Union of two json_group_structure results; raises OutsideFastPath on a JSON type conflict."""
    if a == b:
        return a
    if a == "NULL":
        return b
    if b == "NULL":
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0], b[0])]
    raise OutsideFastPath(f"conflicting JSON types {a!r} and {b!r}")


def _clean_av(spec, level: int = 1):
    """The attribute-value structure with everything DynamoDB JSON does not allow pruned (None if nothing
    is left), and maps and lists deeper than FAST_MAX_DEPTH. Lines holding a pruned part regenerate shorter
    than they are, so the guard sends them to Python, which names what is wrong."""
    if not isinstance(spec, dict) or level > FAST_MAX_DEPTH:
        return None
    out = {}
    for tag, sub in spec.items():
        if tag in _SCALAR:
            keep = sub == _SCALAR[tag]
        elif tag in SETS:
            keep = sub == ["VARCHAR"]
        elif tag == "M":
            children = ((name, _clean_av(child, level + 1)) for name, child in sub.items()
                        if _name_ok(name)) if isinstance(sub, dict) else ()
            sub = _sql_fields({name: c for name, c in children if c})
            keep = bool(sub)
        elif tag == "L":
            keep = isinstance(sub, list) and len(sub) == 1
            if keep and sub[0] != "NULL":
                sub = [_clean_av(sub[0], level + 1)]
                keep = sub[0] is not None
        else:
            keep = False
        if keep:
            out[tag] = sub
    return out or None


def _name_ok(name: str) -> bool:
    return len(name.encode()) <= MAX_NAME_BYTES  # longer ones: the Python share refuses them


def clean(structure) -> dict:
    if not isinstance(structure, dict):
        raise OutsideFastPath("no item structure")
    return _sql_fields({name: c for name, c in ((name, _clean_av(av)) for name, av in structure.items()
                                                if _name_ok(name)) if c})


def _sql_fields(fields: dict) -> dict:
    """The fields SQL can address exactly: DuckDB identifiers cannot be empty or hold NUL, and a struct field
    is found without regard to case, so ``s."upper"`` would read ``Upper`` when a map holds both. Every
    other name is pruned; lines holding one regenerate shorter and take the Python path."""
    lowered: dict = {}
    for name in fields:
        lowered[name.lower()] = lowered.get(name.lower(), 0) + 1
    return {name: c for name, c in fields.items() if name != "" and "\x00" not in name and lowered[name.lower()] == 1}


def duck_type(spec):
    """The structure as a from_json type (VARCHAR leaves stay VARCHAR: no date or number guessing)."""
    if isinstance(spec, dict):
        return {k: duck_type(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return ["VARCHAR" if spec[0] == "NULL" else duck_type(spec[0])]  # a list only ever empty
    return spec


def sampled_structure(con, seed: dict | None = None, lines: str = "lines") -> dict:
    """The item structure of ``lines`` (a table or subquery with a column ``line``) from its first lines plus a
    seeded reservoir (deterministic), pruned.

    With a ``seed`` (a structure the build's earlier chunks found, ``structure_seed``) the reservoir is
    ``SEEDED_SAMPLE_ROWS`` and the result is the union of both (the sample alone where they conflict). Any
    structure only decides how lines are parsed: fields a line lacks are NULL and write nothing, and what
    the structure misses makes a line regenerate shorter than it is, so the guard refines or refuses it."""
    rows = SAMPLE_ROWS if seed is None else min(SAMPLE_ROWS, SEEDED_SAMPLE_ROWS)
    sample = con.execute(
        "SELECT json_group_structure(json_extract(line, '$.Item')) FROM "
        f"((SELECT line FROM {lines} LIMIT {SAMPLE_HEAD}) UNION ALL "
        f"(SELECT line FROM {lines} USING SAMPLE reservoir({rows} ROWS) REPEATABLE (7)))"
    ).fetchone()[0]
    found = clean(json.loads(sample) if sample else "NULL")
    if not seed:
        return found
    try:
        return clean(merge(seed, found))
    except OutsideFastPath:
        return found
