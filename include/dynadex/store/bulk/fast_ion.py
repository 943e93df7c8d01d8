"""ION export lines as DynamoDB JSON lines, converted inside DuckDB, so ION exports take the DuckDB path.

AWS writes an ION export one item a line, ``$ion_1_0 {Item:{name:value,…}}``,
in a small subset of Ion text: strings, decimals (``103.``, ``12.5``),
``true``/``false``, ``null``, blobs ``{{base64}}``, structs for maps, lists,
and lists annotated ``$dynamodb_SS::``/``$dynamodb_NS::``/``$dynamodb_BS::``
for sets. ``ion_lines_sql`` is one SQL query giving each line's DynamoDB
JSON (``{"Item":{"name":{"S":"…"},…}}``) or NULL; the DuckDB path
(``fastbuild``) then reads it exactly as it reads a JSON export's line, with
the same guard, and hands every line it refuses, in its Ion text, to the
exact Python parser (``export.records.parse_ion_line``).

How: the line is split at its double quotes (escaped quotes and backslashes
set aside first), so the odd pieces are the strings and the even ones the
text between them. In that text one RE2 pattern (``VALUES``) finds every
number where a value can be (after ``:``, ``[`` or ``,``) and every blob:
their texts go to the line's list, a marker takes each one's place. What is
left, the line's *skeleton*, holds its frame, names, brackets, keywords and
sets, and no value but ``true``/``false``/``null``, so the lines of an
export have few distinct skeletons (the benchmark's 1 M items: 16; a line
of its own skeleton costs what rewriting it would, plus the reassembly).
Each distinct skeleton is checked and rewritten once, by a few RE2
replacements that see no value: ``{`` becomes ``{"M":{`` and so on, a name
gets its quotes, a number's place ``{"N":"…"}``, a set's members plain
strings (only where the set holds nothing else), and so on; then each
line's numbers and strings go back in their places (``103.`` losing its
point, ``7d0`` its zero exponent), each string as ``{"S":…}`` or, in a set,
as it is. A string's text is never rewritten: only escapes JSON shares with
Ion mean the same in both (others make the JSON invalid, or hold ``\\u``,
which the guard refuses). A pass over a line costs about a microsecond
whatever it finds, a regexp match about 0.2 more (decision 0036): a line
pays for the split, the pattern's two passes and the reassembly, a third of
rewriting every line.

Invariant: the expression gives NULL or valid JSON; valid JSON is the
translation of the Ion line token for token, because each rewrite turns one
Ion token in its own place into one JSON token (a name into a name, a value
into a value, a bracket into a bracket pair of the same kind), and every
value taken out goes back into the place it left (a blob's place, ``{`` and
a marker, is no number's: a number's follows ``:``, ``[`` or ``,``). A type
tag is only ever written with a value of its JSON type, so the guard's type
scan is not needed (``fast_sql``). Anything else left in the text (a symbol
value, a float, a timestamp, an annotation other than a set's, a string as a
field name, a keyword or ``$`` symbol id as a name, a comment, a stray quote
from a quoted symbol holding one, a number with two points, a set member of
another type) leaves JSON that is invalid, so NULL. Lines of the wrong frame
or holding a control character (the markers) are NULL too: outside the
strings by a check of the skeleton (and of the raw line for the markers
themselves), inside them by ``json_valid``, which refuses any. The guard
then proves the rest as for JSON (canonical numbers and binaries, lengths),
so a line is indexed from its translation only where the Python parser
would give the same item.
"""

from __future__ import annotations

from dynadex.store.layout.names import literal

PREFIX, SUFFIX = "$ion_1_0 {Item:", "}"  # the frame of every line AWS writes; the item's own braces stay

# markers (control characters: a line holding one is refused, outside its strings by the skeleton's check, in
# them by json_valid)
_SLOT, _PLAIN, _BSL, _QUOTE = "\x01", "\x04", "\x02", "\x03"  # a string's place, a set member's, escapes
_VALUE, _BLOB = "\x05", "\x07"  # a number's place (after the rewrites any value's), a blob's in the skeleton
_NS_VALUE, _BS_VALUE = "\x06", "\x08"  # a set member's place, until the values' rewrite has passed
_EXTRACTED = (_VALUE, _SLOT)  # in the raw line: they would be taken for places
# A number where a value can be: "103." or "12.5" (a point after a fraction stays, so the line stays invalid), its
# place "<the character before>\x05"; or a blob, its place "{\x05" (no number's: "{" is not before a value).
VALUES = r"([:\[,])-?[0-9]+(?:\.[0-9]+|\.)?|(\{)\{[A-Za-z0-9+/=]*\}\}"
BS1 = "\\1"  # a replacement's first group
BSL2, ESC_QUOTE = "\\\\", '\\"'  # an escaped backslash and an escaped quote in a string
# the brackets' JSON: the first rewrites, so every later one sees them and writes JSON directly
_BRACKETS = (("{", '{"M":{'), ("}", "}}"), ("[", '{"L":['), ("]", "]}"))


def _chr(c: str) -> str:
    return f"chr({ord(c)})"


def _set_members(o: str, tag: str, members) -> str:
    """Rewrite every ``$dynamodb_XS::[…]`` of ``o`` (its bracket already ``{"L":[``): the text up to the first ``]``
    after the annotation is the set's members (the skeleton holds no other ``]`` there), rewritten by
    ``members``; the ``]}`` the bracket rewrite made of the set's ``]`` closes it."""
    head = f"$dynamodb_{tag}::" + '{"L":['
    m = "p[:position(']' IN p) - 1]"
    rest = "p[position(']' IN p):]"
    opened = literal('{"' + tag + '":[')
    return (f"array_to_string(list_transform(string_split({o}, {literal(head)}), (p, i) -> CASE WHEN i = 1 THEN p "
            f"WHEN position(']' IN p) = 0 THEN chr(0) ELSE "
            f"{opened} || {members(m)} || {rest} END), '')")


def _places(place: str, marker: str, quoted: bool = True):
    """A set's members: only places of its kind of value, each then ``marker`` (the value goes there later;
    ``quoted``: in quotes, a number's or a blob's), where the set holds nothing else; else chr(0), invalid JSON.
    So every set the conversion writes holds strings only."""
    def members(m: str) -> str:
        whole = literal(f"(?:{place}(?:,{place})*)?")
        rewritten = f"replace({m}, {_chr(place)}, {_chr(marker)})"
        if quoted:
            rewritten = f"'\"' || replace({rewritten}, ',', '\",\"') || '\"'"
        return f"CASE WHEN {m} = '' THEN '' WHEN NOT regexp_full_match({m}, {whole}) THEN chr(0) ELSE {rewritten} END"
    return members


def _when(needle: str, rewritten: str) -> str:
    """``rewritten`` only where ``o`` holds ``needle``."""
    return f"CASE WHEN contains(o, {_sql_str(needle)}) THEN {rewritten} ELSE o END"


_S_VALUE = '{"S":"' + _SLOT + '"}'
_S_PLAIN = '"' + _SLOT + '"'
_ITEM = literal('{"Item":')
_N_VALUE = '{"N":"' + _VALUE + '"}'
_B_VALUE = '{"B":"' + _VALUE + '"}'
# the skeleton's own check: a control character other than the places' markers, a keyword or symbol id as a name
_SKELETON_OK = ("NOT regexp_matches(o, '[\\x00\\x02-\\x04\\x06-\\x1f]|"
                "[{,]((true|false|null|nan)[ \\t]*:|\\$[0-9]|\\$ion)')")


def rewrite_steps() -> list[str]:
    """The rewrites of a skeleton, column ``o`` (each string a _SLOT, each number a _VALUE after the character
    before it, each blob ``{`` and a _VALUE), in order, each an expression of ``o`` (see the module); every value
    place ends as a _VALUE, in the order of the line's list of values."""
    frame = f"starts_with(o, {literal(PREFIX + '{')}) AND ends_with(o, {literal(SUFFIX + '}')})"
    steps = [f"CASE WHEN {frame} THEN o[{len(PREFIX) + 1}:-{len(SUFFIX) + 1}] END",  # the item, {…}
             f"CASE WHEN {_SKELETON_OK} THEN o END",
             f"replace(o, {_sql_str('{' + _VALUE)}, {_chr(_BLOB)})",  # a blob's place
             # a zero exponent after a number's place is dropped ("7d0", the emulator's integers); any other stays
             f"regexp_replace(o, '{_VALUE}[dD][+-]?0+', {_chr(_VALUE)}, 'g')"]
    # brackets first: a value's own braces, added later, must stay as they are
    steps += [f"replace(o, {_sql_str(a)}, {_sql_str(b)})" for a, b in _BRACKETS]
    for tag, members in (("SS", _places(_SLOT, _PLAIN, quoted=False)), ("NS", _places(_VALUE, _NS_VALUE)),
                         ("BS", _places(_BLOB, _BS_VALUE))):
        steps.append(_when(f"$dynamodb_{tag}::", _set_members("o", tag, members)))
    steps.append(_when("'", "regexp_replace(o, '([{,])''([^''{}\\[\\],:\\x01]*)'':', '\\1\"\\2\":', 'g')"))
    steps.append("regexp_replace(o, '([{,])([A-Za-z_$][A-Za-z0-9_$]*):', '\\1\"\\2\":', 'g')")  # name:
    steps.append(_when(_VALUE, f"replace(o, {_chr(_VALUE)}, {_sql_str(_N_VALUE)})"))
    steps.append(_when(_BLOB, f"replace(o, {_chr(_BLOB)}, {_sql_str(_B_VALUE)})"))
    steps.append("CASE WHEN contains(o, 'true') OR contains(o, 'false') THEN "
                 "regexp_replace(o, '([:\\[,])(true|false)', '\\1{\"BOOL\":\\2}', 'g') ELSE o END")
    steps.append(_when("null", "regexp_replace(o, '([:\\[,])null', '\\1{\"NULL\":true}', 'g')"))
    steps.append(f"replace(o, {_chr(_SLOT)}, {_sql_str(_S_VALUE)})")
    steps.append(_when(_PLAIN, f"replace(o, {_chr(_PLAIN)}, {_sql_str(_S_PLAIN)})"))
    steps.append(_when(_NS_VALUE, f"replace(o, {_chr(_NS_VALUE)}, {_chr(_VALUE)})"))
    steps.append(_when(_BS_VALUE, f"replace(o, {_chr(_BS_VALUE)}, {_chr(_VALUE)})"))
    return steps


def _sql_str(text: str, prefix: str = "") -> str:
    """A SQL expression for ``prefix + text``, control characters as chr()."""
    parts, run = [], ""
    text = prefix + text
    for c in text:
        if c.isprintable():
            run += c
        else:
            if run:
                parts.append(literal(run))
            parts.append(_chr(c))
            run = ""
    if run or not parts:
        parts.append(literal(run))
    return " || ".join(parts) if len(parts) > 1 else parts[0]


def skeletons_sql(lines: str) -> str:
    """Each distinct skeleton of ``lines`` (column ``skel``) rewritten once, as ``pieces``: the text between its
    values' places (numbers and blobs, in the order of the line's list of them), strings still as _SLOT."""
    sql = f"SELECT skel, skel AS o FROM (SELECT DISTINCT skel FROM {lines} WHERE skel IS NOT NULL)"
    for step in rewrite_steps():
        sql = f"SELECT * REPLACE ({step} AS o) FROM ({sql})"
    item = f"{_ITEM} || o[{len(_BRACKETS[0][1])}:-2] || '}}'"  # {"M":{…}} -> {"Item":{…}}
    return f"SELECT skel, string_split({item}, {_chr(_VALUE)}) AS pieces FROM ({sql})"


def ion_lines_sql(source: str) -> str:
    """SELECT every column of ``source`` plus ``json``: the DynamoDB JSON line ``{"Item":{…}}`` of the Ion line
    in its column ``raw``, or NULL (see the module)."""
    # escapes set aside; a line holding a marker they could be mistaken for has none (NULL). The frame stays in
    # the skeleton (checked and taken off there, once per skeleton)
    body = (f"CASE WHEN NOT contains(raw, '\\') THEN raw WHEN NOT (contains(raw, {_chr(_BSL)}) OR "
            f"contains(raw, {_chr(_QUOTE)})) THEN replace(replace(raw, {literal(BSL2)}, {_chr(_BSL)}), "
            f"{literal(ESC_QUOTE)}, {_chr(_QUOTE)}) END")
    frame = " AND ".join(f"NOT contains(raw, {_chr(c)})" for c in _EXTRACTED)
    # a value's text: a blob's base64, or a number without the character before it and a last point ("103.")
    value = "CASE WHEN starts_with(v, '{') THEN v[3:-3] WHEN suffix(v, '.') THEN v[2:-2] ELSE v[2:] END"
    values = literal(VALUES)
    lines = (f"SELECT * EXCLUDE (o), list_transform(regexp_extract_all(o, {values}), v -> {value}) AS vals, "
             f"regexp_replace(o, {values}, '\\2\\1' || {_chr(_VALUE)}, 'g') AS skel FROM ("
             f"SELECT * EXCLUDE (parts), CASE WHEN len(parts) % 2 = 1 THEN array_to_string("
             f"list_slice(parts, 1, -1, 2), {_chr(_SLOT)}) END AS o, "
             f"list_slice(parts, 2, -1, 2) AS strs FROM ("
             f"SELECT *, CASE WHEN {frame} THEN string_split({body}, '\"') END AS parts FROM {source}))")
    with_values = "array_to_string(list_transform(s.pieces, (p, i) -> p || coalesce(l.vals[i], '')), '')"
    sql = (f"WITH ion_lines AS MATERIALIZED ({lines}), ion_skeletons AS ({skeletons_sql('ion_lines')}) "
           f"SELECT l.* EXCLUDE (skel, vals), CASE WHEN len(l.vals) = len(s.pieces) - 1 THEN {with_values} END AS o "
           "FROM ion_lines l LEFT JOIN ion_skeletons s ON l.skel = s.skel")
    # the strings last: a string's text is never split
    joined = (f"array_to_string(list_transform(string_split(o, {_chr(_SLOT)}), "
              "(p, i) -> p || coalesce(strs[i], '')), '')")
    sql = f"SELECT * EXCLUDE (o, strs), {joined} AS j FROM ({sql})"
    restored = (f"CASE WHEN contains(raw, '\\') THEN replace(replace(j, {_chr(_BSL)}, {literal(BSL2)}), "
                f"{_chr(_QUOTE)}, {literal(ESC_QUOTE)}) ELSE j END")  # and put back
    sql = f"SELECT * EXCLUDE (j), {restored} AS c FROM ({sql})"
    return f"SELECT * EXCLUDE (c), CASE WHEN json_valid(c) THEN c END AS json FROM ({sql})"
