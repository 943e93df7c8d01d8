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
text between them. The text between strings is joined with a marker per
string and rewritten by a few RE2 replacements, each with one pattern, that
see no string: a name gets its quotes, a number ``{"N":"…"}`` (a trailing
``.`` or zero exponent dropped: ``103.``, ``7d0``), a set's members become
plain strings, ``{`` becomes ``{"M":{``, and so on; then the strings go back
in their places, each as ``{"S":…}`` or, in a set, as it is. A string's text
is never rewritten: only escapes JSON shares with Ion mean the same in both
(others make the JSON invalid, or hold ``\\u``, which the guard refuses).

Invariant: the expression gives NULL or valid JSON; valid JSON is the
translation of the Ion line token for token, because each rewrite turns one
Ion token in its own place into one JSON token (a name into a name, a value
into a value, a bracket into a bracket pair of the same kind). Anything else
left in the text (a symbol value, a float, a timestamp, an annotation other
than a set's, a string as a field name, a keyword or ``$`` symbol id as a
name, a comment, a stray quote from a quoted symbol holding one) leaves JSON
that is invalid, so NULL. Lines of the wrong frame or holding a control
character (the markers) are NULL too. The guard then proves the rest as for
JSON (canonical numbers and binaries, types, lengths), so a line is indexed
from its translation only where the Python parser would give the same item.
"""

from __future__ import annotations

from dynadex.store.layout.names import literal

PREFIX, SUFFIX = "$ion_1_0 {Item:", "}"  # the frame of every line AWS writes; the item's own braces stay

# markers (control characters: refused in the line itself)
_SLOT, _PLAIN, _BSL, _QUOTE = "\x01", "\x04", "\x02", "\x03"
_SET_OPEN = {"SS": "\x10", "NS": "\x11", "BS": "\x13"}
_SET_CLOSE, _BLOB_OPEN, _BLOB_CLOSE = "\x12", "\x14", "\x15"
BS1 = "\\1"  # a replacement's first group
BSL2, ESC_QUOTE = "\\\\", '\\"'  # an escaped backslash and an escaped quote in a string


def _chr(c: str) -> str:
    return f"chr({ord(c)})"


def _set_members(o: str, tag: str, members: str) -> str:
    """Rewrite every ``$dynamodb_XS::[…]`` of ``o``: the text up to the first ``]`` after the annotation is the
    set's members (the text between strings holds no other ``]`` there), rewritten by ``members``."""
    head = f"$dynamodb_{tag}::["
    m = "p[:position(']' IN p) - 1]"
    rest = "p[position(']' IN p) + 1:]"
    return (f"array_to_string(list_transform(string_split({o}, {literal(head)}), (p, i) -> CASE WHEN i = 1 THEN p "
            f"WHEN position(']' IN p) = 0 THEN chr(0) ELSE "
            f"{_chr(_SET_OPEN[tag])} || {members.format(m=m)} || {_chr(_SET_CLOSE)} || {rest} END), '')")


def _when(needle: str, rewritten: str) -> str:
    """``rewritten`` only where ``o`` holds ``needle`` (a rewrite costs microseconds a line; a test, little)."""
    return f"CASE WHEN contains(o, {_sql_str(needle)}) THEN {rewritten} ELSE o END"


_S_VALUE = '{"S":"' + _SLOT + '"}'
_S_PLAIN = '"' + _SLOT + '"'


def rewrite_steps() -> list[str]:
    """The rewrites of the text between strings, column ``o`` (each string one _SLOT), in order, each an
    expression of ``o`` (see the module). Rare tokens (sets, blobs, quoted names, booleans, nulls) are
    rewritten only in lines holding them."""
    steps = []
    for tag, members in (("SS", f"translate({{m}}, {_chr(_SLOT)}, {_chr(_PLAIN)})"),
                         ("NS", "CASE WHEN {m} = '' THEN '' ELSE '\"' || replace(regexp_replace({m}, "
                                "'([0-9]+)(?:(\\.[0-9]+)|\\.)?(?:[dD][+-]?0+)?(,|$)', '\\1\\2\\3', 'g'), "
                                "',', '\",\"') || '\"' END"),
                         ("BS", "replace(replace({m}, '{{{{', '\"'), '}}}}', '\"')")):
        steps.append(_when(f"$dynamodb_{tag}::[", _set_members("o", tag, members)))
    steps.append(_when("{{", "regexp_replace(o, '\\{\\{([A-Za-z0-9+/=]*)\\}\\}', "
                             f"{_sql_str(_BLOB_OPEN + BS1 + _BLOB_CLOSE)}, 'g')"))
    steps.append(_when("'", "regexp_replace(o, '([{,])''([^''{}\\[\\],:\\x01]*)'':', '\\1\"\\2\":', 'g')"))
    # brackets first: a value's own braces, added next, must stay as they are
    for a, b in (("{", '{"M":{'), ("}", "}}"), ("[", '{"L":['), ("]", "]}")):
        steps.append(f"replace(o, {_sql_str(a)}, {_sql_str(b)})")
    steps.append("regexp_replace(o, '([{,])([A-Za-z_$][A-Za-z0-9_$]*):', '\\1\"\\2\":', 'g')")  # name:
    # a number: "103." and "7d0" lose their point and zero exponent; any other exponent stays (not canonical)
    steps.append("regexp_replace(o, '([:\\[,])(-?[0-9]+)(?:(\\.[0-9]+)|\\.)?(?:[dD][+-]?0+)?', "
                 "'\\1{\"N\":\"\\2\\3\"}', 'g')")
    steps.append(_when("true", "regexp_replace(o, '([:\\[,])true', '\\1{\"BOOL\":true}', 'g')"))
    steps.append(_when("false", "regexp_replace(o, '([:\\[,])false', '\\1{\"BOOL\":false}', 'g')"))
    steps.append(_when("null", "regexp_replace(o, '([:\\[,])null', '\\1{\"NULL\":true}', 'g')"))
    steps.append(f"replace(o, {_chr(_SLOT)}, {_sql_str(_S_VALUE)})")
    steps.append(_when(_PLAIN, f"replace(o, {_chr(_PLAIN)}, {_sql_str(_S_PLAIN)})"))
    for a, b in ((_SET_OPEN["SS"], '{"SS":['), (_SET_OPEN["NS"], '{"NS":['), (_SET_OPEN["BS"], '{"BS":['),
                 (_SET_CLOSE, "]}"), (_BLOB_OPEN, '{"B":"'), (_BLOB_CLOSE, '"}')):
        steps.append(_when(a, f"replace(o, {_sql_str(a)}, {_sql_str(b)})"))
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


def ion_lines_sql(source: str) -> str:
    """SELECT every column of ``source`` plus ``json``: the DynamoDB JSON line ``{"Item":{…}}`` of the Ion line
    in its column ``raw``, or NULL (see the module)."""
    item = f"raw[{len(PREFIX) + 1}:-{len(SUFFIX) + 1}]"
    body = (f"CASE WHEN contains(raw, '\\') THEN replace(replace({item}, {literal(BSL2)}, {_chr(_BSL)}), "
            f"{literal(ESC_QUOTE)}, {_chr(_QUOTE)}) ELSE {item} END")  # escapes set aside
    frame = (f"starts_with(raw, {literal(PREFIX + '{')}) AND ends_with(raw, {literal(SUFFIX + '}')}) "
             "AND NOT regexp_matches(raw, '[\\x00-\\x1f]')")
    names_ok = "NOT regexp_matches(o, '[{,]((true|false|null|nan)[ \\t]*:|\\$[0-9]|\\$ion)')"
    sql = (f"SELECT * EXCLUDE (parts), CASE WHEN len(parts) % 2 = 1 THEN array_to_string("
           f"list_filter(parts, (x, i) -> i % 2 = 1), {_chr(_SLOT)}) END AS o, "
           f"list_filter(parts, (x, i) -> i % 2 = 0) AS strs FROM ("
           f"SELECT *, CASE WHEN {frame} THEN string_split({body}, '\"') END AS parts FROM {source})")
    sql = f"SELECT * REPLACE (CASE WHEN {names_ok} THEN o END AS o) FROM ({sql})"
    for step in rewrite_steps():
        sql = f"SELECT * REPLACE ({step} AS o) FROM ({sql})"
    joined = (f"array_to_string(list_transform(string_split(o, {_chr(_SLOT)}), "
              "(p, i) -> p || coalesce(strs[i], '')), '')")
    restored = (f"CASE WHEN contains(raw, '\\') THEN replace(replace(j, {_chr(_BSL)}, {literal(BSL2)}), "
                f"{_chr(_QUOTE)}, {literal(ESC_QUOTE)}) ELSE j END")  # and put back
    sql = f"SELECT * EXCLUDE (o, strs), {joined} AS j FROM ({sql})"
    sql = f"SELECT * EXCLUDE (j), '{{\"Item\":' || ({restored})[6:-2] || '}}' AS c FROM ({sql})"
    return (f"SELECT * EXCLUDE (c), CASE WHEN NOT regexp_matches(c, '[\\x00-\\x1f]') AND json_valid(c) "
            f"THEN c END AS json FROM ({sql})")
