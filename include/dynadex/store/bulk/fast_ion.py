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
see no string: ``{`` becomes ``{"M":{`` and so on (first, so that each
later rewrite writes JSON directly, with no marker to expand at the end), a
name gets its quotes, a number ``{"N":"…"}`` (a trailing ``.`` or zero
exponent dropped: ``103.``, ``7d0``), a set's members become plain strings
(an NS's only where they are all numbers), and so on; then the strings go
back in their places, each as ``{"S":…}`` or, in a set, as it is. A string's
text is never rewritten: only escapes JSON shares with Ion mean the same in
both (others make the JSON invalid, or hold ``\\u``, which the guard refuses).
Each pass over a line costs about a microsecond whatever it finds, a regexp
match about 0.2 more (decision 0036): so few passes, and rare tokens only
rewritten in lines holding them.

Invariant: the expression gives NULL or valid JSON; valid JSON is the
translation of the Ion line token for token, because each rewrite turns one
Ion token in its own place into one JSON token (a name into a name, a value
into a value, a bracket into a bracket pair of the same kind). Anything else
left in the text (a symbol value, a float, a timestamp, an annotation other
than a set's, a string as a field name, a keyword or ``$`` symbol id as a
name, a comment, a stray quote from a quoted symbol holding one) leaves JSON
that is invalid, so NULL. Lines of the wrong frame or holding a control
character (the markers) are NULL too: outside the strings by a check of the
text between them, inside them by ``json_valid``, which refuses any. The
guard then proves the rest as for JSON (canonical numbers and binaries,
types, lengths), so a line is indexed from its translation only where the
Python parser would give the same item.
"""

from __future__ import annotations

from dynadex.store.layout.names import literal

PREFIX, SUFFIX = "$ion_1_0 {Item:", "}"  # the frame of every line AWS writes; the item's own braces stay

# markers (control characters: a line holding one outside its strings is refused, and json_valid refuses one in them)
_SLOT, _PLAIN, _BSL, _QUOTE = "\x01", "\x04", "\x02", "\x03"
BS1 = "\\1"  # a replacement's first group
BSL2, ESC_QUOTE = "\\\\", '\\"'  # an escaped backslash and an escaped quote in a string
# the brackets' JSON: the first rewrite, so every later one sees them, and a blob or a set's head, already rewritten
_BRACKETS = (("{", '{"M":{'), ("}", "}}"), ("[", '{"L":['), ("]", "]}"))
_BLOB = '{"M":{{"M":{'  # "{{" after the bracket rewrite; "}}" became "}}}}"


def _chr(c: str) -> str:
    return f"chr({ord(c)})"


def _set_members(o: str, tag: str, members) -> str:
    """Rewrite every ``$dynamodb_XS::[…]`` of ``o`` (its bracket already ``{"L":[``): the text up to the first ``]``
    after the annotation is the set's members (the text between strings holds no other ``]`` there), rewritten
    by ``members``; the ``]}`` the bracket rewrite made of the set's ``]`` closes it."""
    head = f"$dynamodb_{tag}::" + '{"L":['
    m = "p[:position(']' IN p) - 1]"
    rest = "p[position(']' IN p):]"
    opened = literal('{"' + tag + '":[')
    return (f"array_to_string(list_transform(string_split({o}, {literal(head)}), (p, i) -> CASE WHEN i = 1 THEN p "
            f"WHEN position(']' IN p) = 0 THEN chr(0) ELSE "
            f"{opened} || {members(m)} || {rest} END), '')")


_NS_MEMBER = r"-?[0-9]+(?:\.[0-9]+|\.)?(?:[dD][+-]?0+)?"


def _ns_members(m: str) -> str:
    """An NS's members, each a quoted number ("103." and "7d0" lose their point and zero exponent), only where
    the whole text is numbers and commas (else chr(0): invalid JSON). Without exponents, two plain replaces:
    a point before a comma or at the end is a number's last character."""
    whole = f"'(?:{_NS_MEMBER}(?:,{_NS_MEMBER})*)?'"
    plain = f"replace(CASE WHEN suffix({m}, '.') THEN {m}[:-2] ELSE {m} END, '.,', ',')"
    exponents = f"regexp_replace({m}, '([0-9])(?:\\.)?(?:[dD][+-]?0+)?(,|$)', '\\1\\2', 'g')"
    return (f"CASE WHEN {m} = '' THEN '' WHEN NOT regexp_full_match({m}, {whole}) THEN chr(0) ELSE '\"' || "
            f"replace(CASE WHEN contains(lower({m}), 'd') THEN {exponents} ELSE {plain} END, ',', '\",\"') || '\"' END")


def _when(needle: str, rewritten: str) -> str:
    """``rewritten`` only where ``o`` holds ``needle`` (a rewrite costs microseconds a line; a test, little)."""
    return f"CASE WHEN contains(o, {_sql_str(needle)}) THEN {rewritten} ELSE o END"


_S_VALUE = '{"S":"' + _SLOT + '"}'
_S_PLAIN = '"' + _SLOT + '"'
_B_VALUE = '{"B":"' + BS1 + '"}'


def rewrite_steps() -> list[str]:
    """The rewrites of the text between strings, column ``o`` (each string one _SLOT), in order, each an
    expression of ``o`` (see the module). Rare tokens (sets, blobs, quoted names, booleans, nulls) are
    rewritten only in lines holding them. Every rewrite writes JSON, no marker to expand later (each pass
    over the line costs about a microsecond, whatever it finds)."""
    # brackets first: a value's own braces, added later, must stay as they are
    steps = [f"replace(o, {_sql_str(a)}, {_sql_str(b)})" for a, b in _BRACKETS]
    for tag, members in (("SS", lambda m: f"replace({m}, {_chr(_SLOT)}, {_chr(_PLAIN)})"), ("NS", _ns_members),
                         ("BS", lambda m: f"replace(replace({m}, {literal(_BLOB)}, '\"'), '}}}}}}}}', '\"')")):
        steps.append(_when(f"$dynamodb_{tag}::", _set_members("o", tag, members)))
    blob = "".join("\\" + c if c in '{}' else c for c in _BLOB)
    steps.append(_when(_BLOB, f"regexp_replace(o, '{blob}([A-Za-z0-9+/=]*)\\}}\\}}\\}}\\}}', "
                              f"{_sql_str(_B_VALUE)}, 'g')"))
    steps.append(_when("'", "regexp_replace(o, '([{,])''([^''{}\\[\\],:\\x01]*)'':', '\\1\"\\2\":', 'g')"))
    steps.append("regexp_replace(o, '([{,])([A-Za-z_$][A-Za-z0-9_$]*):', '\\1\"\\2\":', 'g')")  # name:
    # a number: "103." and "7d0" lose their point and zero exponent; any other exponent stays (not canonical)
    steps.append("regexp_replace(o, '([:\\[,])(-?[0-9]+)(?:(\\.[0-9]+)|\\.)?(?:[dD][+-]?0+)?', "
                 "'\\1{\"N\":\"\\2\\3\"}', 'g')")
    steps.append("CASE WHEN contains(o, 'true') OR contains(o, 'false') THEN "
                 "regexp_replace(o, '([:\\[,])(true|false)', '\\1{\"BOOL\":\\2}', 'g') ELSE o END")
    steps.append(_when("null", "regexp_replace(o, '([:\\[,])null', '\\1{\"NULL\":true}', 'g')"))
    steps.append(f"replace(o, {_chr(_SLOT)}, {_sql_str(_S_VALUE)})")
    steps.append(_when(_PLAIN, f"replace(o, {_chr(_PLAIN)}, {_sql_str(_S_PLAIN)})"))
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
    # escapes set aside; a line holding a marker they could be mistaken for has none (NULL)
    body = (f"CASE WHEN NOT contains(raw, '\\') THEN {item} WHEN NOT (contains(raw, {_chr(_BSL)}) OR "
            f"contains(raw, {_chr(_QUOTE)})) THEN replace(replace({item}, {literal(BSL2)}, {_chr(_BSL)}), "
            f"{literal(ESC_QUOTE)}, {_chr(_QUOTE)}) END")
    # a control character: outside the strings refused here (a _SLOT in the raw line, anywhere), inside them by
    # json_valid at the end, which refuses any (the escapes' markers were checked above)
    frame = (f"starts_with(raw, {literal(PREFIX + '{')}) AND ends_with(raw, {literal(SUFFIX + '}')}) "
             f"AND NOT contains(raw, {_chr(_SLOT)})")
    names_ok = "NOT regexp_matches(o, '[\\x00\\x02-\\x1f]|[{,]((true|false|null|nan)[ \\t]*:|\\$[0-9]|\\$ion)')"
    sql = (f"SELECT * EXCLUDE (parts), CASE WHEN len(parts) % 2 = 1 THEN array_to_string("
           f"list_slice(parts, 1, -1, 2), {_chr(_SLOT)}) END AS o, "
           f"list_slice(parts, 2, -1, 2) AS strs FROM ("
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
    return f"SELECT * EXCLUDE (c), CASE WHEN json_valid(c) THEN c END AS json FROM ({sql})"
