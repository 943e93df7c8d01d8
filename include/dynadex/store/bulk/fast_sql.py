"""SQL that builds a chunk's staged rows from lines parsed with the export's structure (generated, not run).

Every function here returns SQL text over a struct ``e`` whose structure is
known (``fast_structure``); ``fastbuild`` runs it. Values never enter SQL
text except attribute names, as quoted identifiers and literals.

Invariant: the canonical item text, key text, column values and inverted
entries generated here are byte-for-byte what the Python path
(``dynadex.store.layout.shape``) gives for a line that passes ``guard`` and the
length check (tests/store/bulk/test_fastbuild.py compares them).
"""

from __future__ import annotations

import json

from dynadex.limits import MAX_ITEM_BYTES
from dynadex.store.bulk.fast_ion import index_type, struct_sql
from dynadex.store.bulk.fast_structure import (
    SETS,
    TAGS,
    duck_type,
    ident,
    lit,
    name_counts_equal,
    names,
    wrong_json_type,
)
from dynadex.store.layout.names import KEY_COLUMN, child_text, staging_name

# canonical numbers, as dynadex.types.PLAIN_INT / PLAIN_DEC (digit count checked separately)
_NUMBER_RE = r"-?[1-9][0-9]{0,37}|0|-?[1-9][0-9]{0,36}\.[0-9]{0,36}[1-9]|-?0\.0{0,90}[1-9]([0-9]{0,35}[1-9])?"

# An NS is sorted by DOUBLE: exact for members of at most 15 significant digits (distinct such decimals
# are distinct doubles, in the same order); VARCHAR -> DECIMAL casts cost 30x more.
NS_DIGITS = 15


class _Gen:
    """SQL expressions over an attribute-value struct ``e`` whose structure is ``spec``."""

    def __init__(self) -> None:
        self.n = 0

    def var(self) -> str:
        self.n += 1
        return f"x{self.n}"

    @staticmethod
    def field(e: str, tag: str) -> str:
        return f"{e}.{ident(tag)}"

    def ns_sorted(self, e: str) -> str:
        v = self.var()
        return f"list_select({e}, list_grade_up(list_transform({e}, {v} -> {v}::DOUBLE)))"

    def bs_sorted_blobs(self, e: str) -> str:
        v = self.var()
        return f"list_sort(list_transform({e}, {v} -> from_base64({v})))"

    def text(self, e: str, spec: dict, label: str | None = None) -> str:
        """Canonical JSON text of the attribute value, after ``label`` (NULL when no tag is set: the length
        guard catches it). One concat() per value: chained || copies the growing text at every step."""
        whens = []
        for tag in sorted(spec):
            f = self.field(e, tag)
            parts = ([label] if label else []) + self.tag_parts(f, tag, spec[tag])
            whens.append(f"WHEN {f} IS NOT NULL THEN {parts[0] if len(parts) == 1 else 'concat(' + ', '.join(parts) + ')'}")
        return "CASE " + " ".join(whens) + " END"

    def tag_parts(self, f: str, tag: str, sub) -> list[str]:
        """SQL pieces whose concatenation is the canonical text of the non-NULL value ``f`` tagged ``tag``.
        to_json writes a string or a list of strings exactly as the canonical JSON does (parity tests)."""
        if tag == "S":
            return ["'{\"S\":'", f"to_json({f})", "'}'"]
        if tag in ("N", "B"):
            return [f"'{{\"{tag}\":\"'", f, "'\"}'"]
        if tag == "BOOL":
            return [f"CASE WHEN {f} THEN '{{\"BOOL\":true}}' ELSE '{{\"BOOL\":false}}' END"]
        if tag == "NULL":
            return ["'{\"NULL\":true}'"]
        if tag == "SS":
            return ["'{\"SS\":'", f"to_json(list_sort({f}))", "'}'"]
        if tag == "NS":
            return ["'{\"NS\":'", f"to_json({self.ns_sorted(f)})", "'}'"]
        if tag == "BS":
            v = self.var()
            return ["'{\"BS\":'", f"to_json(list_transform({self.bs_sorted_blobs(f)}, {v} -> to_base64({v})))", "'}'"]
        if tag == "M":
            return ["'{\"M\":'", self.map_text(f, sub), "'}'"]
        elem = sub[0]  # L
        if elem == "NULL":
            return ["'{\"L\":[]}'"]
        v = self.var()
        return ["'{\"L\":['", f"array_to_string(list_transform({f}, {v} -> {self.text(v, elem)}), ',')", "']}'"]

    def map_text(self, e: str, fields: dict) -> str:
        parts = [self.text(f"{e}.{ident(name)}", fields[name], lit(json.dumps(name, ensure_ascii=False) + ":"))
                 for name in sorted(fields)]
        return "concat('{', concat_ws(',', " + ", ".join(parts) + "), '}')"

    def plain(self, e: str, spec: dict) -> str:
        """One list element as the column index holds it (dynadex.store.layout.shape.plain_value)."""
        whens = []
        for tag in sorted(spec):
            f = self.field(e, tag)
            if tag in ("S", "N", "B"):
                whens.append(f"WHEN {f} IS NOT NULL THEN {f}")
            elif tag == "BOOL":
                whens.append(f"WHEN {f} IS NOT NULL THEN CASE WHEN {f} THEN 'true' ELSE 'false' END")
            elif tag == "NULL":
                whens.append(f"WHEN {f} IS NOT NULL THEN NULL")
            else:
                whens.append(f"WHEN {f} IS NOT NULL THEN {self.text(e, {tag: spec[tag]})}")
        return "CASE " + " ".join(whens) + " END"

    def guard(self, e: str, spec: dict) -> str:
        """TRUE when every number and binary is canonical, sets are proper and NULL is true (NULL-safe)."""
        checks = []
        for tag in sorted(spec):
            f = self.field(e, tag)
            if tag == "N":
                checks.append(f"({f} IS NULL OR ({_number_ok(f)}))")
            elif tag == "B":
                checks.append(f"({f} IS NULL OR to_base64(from_base64({f})) = {f})")
            elif tag == "NULL":
                checks.append(f"({f} IS NULL OR {f})")
            elif tag in SETS:
                v = self.var()
                member = {"SS": "true", "NS": f"{_number_ok(v, NS_DIGITS)}",
                          "BS": f"to_base64(from_base64({v})) = {v}"}[tag]
                checks.append(f"({f} IS NULL OR (len({f}) > 0 AND len(list_distinct({f})) = len({f}) "
                              f"AND list_bool_and(list_transform({f}, {v} -> {member}))))")
            elif tag == "M":
                inner = [self.guard(f"{f}.{ident(name)}", child) for name, child in spec["M"].items()]
                inner = [g for g in inner if g != "true"]
                if inner:
                    checks.append(f"({f} IS NULL OR ({' AND '.join(inner)}))")
            elif tag == "L" and spec["L"][0] != "NULL":
                v = self.var()
                inner = self.guard(v, spec["L"][0])
                if inner != "true":
                    checks.append(f"({f} IS NULL OR list_bool_and(list_transform({f}, {v} -> {inner})))")
        return " AND ".join(checks) if checks else "true"


def _digits(f: str) -> str:
    """Digits after leading zeros: at least the significant digits of a canonical number."""
    return f"strlen(ltrim(replace(ltrim({f}, '-'), '.', ''), '0'))"


def _number_ok(f: str, digits: int = 38) -> str:
    """A canonical number of at most ``digits`` significant digits (counted only when the text is longer)."""
    return f"regexp_full_match({f}, {lit(_NUMBER_RE)}) AND CASE WHEN strlen({f}) <= {digits} THEN true ELSE {_digits(f)} <= {digits} END"


def _columns(gen: _Gen, e: str, spec: dict, path: tuple, out: list) -> None:
    """(path, kind, value expression, field) of every column the attribute feeds; the value is NULL exactly
    where the field is."""
    for tag in sorted(spec):
        f = gen.field(e, tag)
        if tag == "M":
            for name, child in sorted(spec["M"].items()):
                _columns(gen, f"{f}.{ident(name)}", child, path + (name,), out)
        elif tag in ("S", "N", "BOOL"):
            out.append((path, tag, f, f))
        elif tag == "B":
            out.append((path, tag, f"from_base64({f})", f))
        elif tag == "SS":
            out.append((path, tag, f"list_sort({f})", f))
        elif tag == "NS":
            out.append((path, tag, gen.ns_sorted(f), f))
        elif tag == "BS":
            out.append((path, tag, gen.bs_sorted_blobs(f), f))
        elif tag == "L":
            elem = spec["L"][0]
            if elem == "NULL":
                out.append((path, tag, f"CASE WHEN {f} IS NOT NULL THEN []::VARCHAR[] END", f))
            else:
                v = gen.var()
                out.append((path, tag, f"list_transform({f}, {v} -> {gen.plain(v, elem)})", f))


def _entry(path_text: str, kind: str, value: str) -> str:
    return f"{{'p': {lit(path_text)}, 'k': '{kind}', 'v': {value}}}"


def _inverted(gen: _Gen, e: str, spec: dict, path_text: str, out: list) -> None:
    """List expressions (one row's share) of inverted entries {p, k, v} for every scalar leaf, set member
    and list element of the attribute value ``e`` (an empty list where the value is absent). One list
    per row, unnested once: 2x faster than one SELECT per leaf, even over the narrow column table."""
    for tag in sorted(spec):
        f = gen.field(e, tag)
        if tag in ("S", "N", "B"):
            out.append(f"CASE WHEN {f} IS NOT NULL THEN [{_entry(path_text, tag, f)}] ELSE [] END")
        elif tag == "BOOL":
            value = f"CASE WHEN {f} THEN 'true' ELSE 'false' END"
            out.append(f"CASE WHEN {f} IS NOT NULL THEN [{_entry(path_text, tag, value)}] ELSE [] END")
        elif tag == "NULL":
            out.append(f"CASE WHEN {f} IS NOT NULL THEN [{_entry(path_text, tag, 'NULL::VARCHAR')}] ELSE [] END")
        elif tag in SETS:
            v = gen.var()
            out.append(f"coalesce(list_transform({f}, {v} -> {_entry(path_text, tag[0], v)}), [])")
        elif tag == "M":
            for name, child in sorted(spec["M"].items()):
                _inverted(gen, f"{f}.{ident(name)}", child, child_text(path_text, name), out)
        elif tag == "L":
            elem = spec["L"][0]
            if elem == "NULL":
                continue
            v = gen.var()
            inner: list = []
            _inverted(gen, v, elem, path_text, inner)
            out.append(f"coalesce(flatten(list_transform({f}, {v} -> {_concat(inner)})), [])")


def _concat(lists: list) -> str:
    if len(lists) == 1:
        return lists[0]
    return "list_concat(" + ", ".join(lists) + ")"




# ------------------------------------------------------------- the statements


def typed_table_sql(structure: dict, key_names, key_types, *, raw: bool = False, carry: tuple[str, ...] = ()) -> str:
    """CREATE the temp table ``typed(j, key, item, ok, bad_line)`` from ``lines``: each line parsed with the
    structure, its canonical key and item text, and whether it passes every guard. ``raw``: ``lines`` holds
    ION lines (``fast_ion.ion_tables_sql``: each line's Ion text, kept as ``bad_raw`` where the guard refuses
    the line, its skeleton and its values): each is typed as ``from_json`` types its translation
    (``fast_ion.struct_sql``) and checked as that translation would be, with its length ``translen`` and
    its skeleton's ``line`` (the translation's JSON shape, frame and names; ``bad_line``, the structure's
    refinements read it); its values have their JSON types by construction (the RE2 type scan, 0.9 µs a
    line, is left out; tests/store/bulk/test_fast_ion.py). ``carry``: columns of ``lines`` that
    ``typed`` keeps as they are (the stream apply's key, version and origin per line)."""
    gen = _Gen()
    kept = "".join(f", {ident(c)}" for c in carry)
    i = "j.Item"
    item_text = gen.map_text(i, structure)
    guards = [gen.guard(f"{i}.{ident(name)}", av) for name, av in sorted(structure.items())]
    guards = [g for g in guards if g != "true"]
    key_parts = []
    key_checks = []
    for name in sorted(key_names):
        t = key_types[key_names.index(name)]
        f = f"{i}.{ident(name)}.{ident(t)}"
        value = f"to_json({f})::VARCHAR" if t == "S" else f"'\"' || {f} || '\"'"
        key_parts.append(f"{lit(json.dumps(name, ensure_ascii=False) + ':{' + json.dumps(t) + ':')} || {value} || '}}'")
        key_checks.append(f"{f} IS NOT NULL")
    key_text = "'{' || " + " || ',' || ".join(key_parts) + " || '}'"
    like_tags = frozenset(names(structure, set()) & set(TAGS) - {"M"})
    # an ION line: ``line`` is its skeleton's translation, places as indexes (``fast_ion``), whose JSON shape,
    # frame and names are the translation's; its own length is ``translen``
    length = "translen" if raw else "strlen(line)"
    ok = " AND ".join(
        ["starts_with(line, '{\"Item\":{')", "ends_with(line, '}')",
         "NOT contains(raw, '\\u') AND strings_ok" if raw else "NOT contains(line, '\\u')",
         f"{length} <= {MAX_ITEM_BYTES}",  # a line's bytes bound its item's size; longer ones: Python checks
         # an ION line's translation writes each type tag with a value of its JSON type (fast_ion): no scan there
         *([] if raw else [f"NOT regexp_matches(line, {lit(wrong_json_type(like_tags))})"]),
         "item IS NOT NULL", f"strlen(item) = {length} - 9", *name_counts_equal(like_tags), *key_checks, *guards])
    item_type = lit(json.dumps({"Item": duck_type(structure)}))
    if raw:  # the struct from_json would give the translation, from the skeleton's and the line's values
        parsed = (f"SELECT l.raw, l.translen, l.strings_ok{kept}, s.line, "
                  f"{struct_sql('s.k', 'l.vals', 'l.strs', structure)} AS j FROM lines l LEFT JOIN "
                  f"(SELECT sid, line, from_json(line, {lit(json.dumps({'Item': index_type(structure)}))}) "
                  "AS k FROM ion_skeletons) s USING (sid)")
        inner = f"j, line, raw, translen, strings_ok{kept}"
    else:
        parsed = f"SELECT line{kept}, from_json(line, {item_type}) AS j FROM lines"
        inner = f"j, line{kept}"
    return (
        f"CREATE TEMP TABLE typed AS SELECT j, key, item, ok, CASE WHEN NOT ok THEN line END AS bad_line"
        f"{', CASE WHEN NOT ok THEN raw END AS bad_raw' if raw else ''}{kept} FROM "
        f"(SELECT *, coalesce({ok}, false) AS ok FROM "
        f"(SELECT {inner}, {key_text} AS key, {item_text} AS item FROM ({parsed})))")


def rows_sql(structure: dict, key_names, key_types, version: int | None, origin: str | None) -> str:
    """The staged row index of the lines the guard admits; ``version`` and ``origin`` None: each line's own,
    carried in ``typed`` (``typed_table_sql``'s ``carry``)."""
    i = "j.Item"
    key_cols = []
    for col, name, t in zip(("pk", "sk"), key_names, key_types):
        f = f"{i}.{ident(name)}.{ident(t)}"
        key_cols.append(f"{'from_base64(' + f + ')' if t == 'B' else f} AS {col}")
    v = "version" if version is None else f"{int(version)}::BIGINT AS version"
    o = "origin" if origin is None else f"{lit(origin)} AS origin"
    return f"SELECT key, {', '.join(key_cols)}, item, {v}, {o} FROM typed WHERE ok"


def column_exprs(structure: dict) -> dict[str, tuple[tuple, str, str, str]]:
    """staging name -> (path, kind, staged value expression, parsed field) of every column the structure feeds."""
    gen = _Gen()
    cols: list = []
    for name, av in sorted(structure.items()):
        _columns(gen, f"j.Item.{ident(name)}", av, (name,), cols)
    return {staging_name(path, kind): (path, kind, expr, f) for path, kind, expr, f in cols}


def figures_sql(exprs: dict) -> str | None:
    """One row: per column (sorted by staging name) its count, then for numbers [integral, int digits, scale]."""
    aggs = []
    for n in sorted(exprs):
        _path, kind, _expr, f = exprs[n]
        aggs.append(f"count({f})")
        if kind in ("N", "NS"):
            v = f"unnest({f})" if kind == "NS" else f
            body = "ltrim(v, '-')"
            aggs.append(
                f"(SELECT [coalesce(bool_and(NOT contains(v, '.')), true)::INT, coalesce(max(CASE WHEN contains(v, '.') THEN "
                f"CASE WHEN split_part({body}, '.', 1) = '0' THEN 0 ELSE strlen(split_part({body}, '.', 1)) END "
                f"ELSE strlen({body}) END), 0), coalesce(max(CASE WHEN contains(v, '.') THEN strlen(split_part(v, '.', 2)) END), 0)] "
                f"FROM (SELECT {v} AS v FROM typed WHERE ok))")
    return ("SELECT " + ", ".join(aggs) + " FROM typed WHERE ok") if aggs else None


def cols_sql(exprs: dict, filled: list[str]) -> str:
    """The staged column index: ``_key`` and the columns some item fills, under their staging names."""
    return ("SELECT " + ", ".join([f"key AS {ident(KEY_COLUMN)}"] + [f"{exprs[n][2]} AS {ident(n)}" for n in filled])
            + " FROM typed WHERE ok")


def inv_sql(structure: dict) -> str:
    gen = _Gen()
    lists: list = []
    for name, av in sorted(structure.items()):
        _inverted(gen, f"j.Item.{ident(name)}", av, child_text("", name), lists)
    if not lists:
        return "SELECT NULL::VARCHAR AS path, NULL::VARCHAR AS kind, NULL::VARCHAR AS value, NULL::VARCHAR AS key LIMIT 0"
    return (f"SELECT p AS path, k AS kind, v AS value, key FROM (SELECT unnest(e, recursive := true), key FROM "
            f"(SELECT key, {_concat(lists)} AS e FROM typed WHERE ok))")
