"""ION export lines typed as their DynamoDB JSON translations would parse, inside DuckDB, so ION exports take
the DuckDB path.

AWS writes an ION export one item a line, ``$ion_1_0 {Item:{name:value,…}}``,
in a small subset of Ion text: strings, decimals (``103.``, ``12.5``),
``true``/``false``, ``null``, blobs ``{{base64}}``, structs for maps, lists,
and lists annotated ``$dynamodb_SS::``/``$dynamodb_NS::``/``$dynamodb_BS::``
for sets. Each line has a *translation*, its DynamoDB JSON
(``{"Item":{"name":{"S":"…"},…}}``), or none; the DuckDB path (``fastbuild``)
types each line as ``from_json`` would type its translation, runs the JSON
guard on that, and hands every line it refuses, in its Ion text, to the exact
Python parser (``export.records.parse_ion_line``). The translation itself is
never written out for a line (``ion_lines_sql`` does, for the tests).

How: the line is split at its double quotes (escaped quotes and backslashes
set aside first), so the odd pieces are the strings and the even ones the
text between them. In that text one RE2 pattern (``VALUES``) finds every
number where a value can be (after ``:``, ``[`` or ``,``) and every blob:
their texts go to the line's ``vals`` (its strings' to its ``strs``), and a
marker takes each one's place. What is left, the line's *skeleton*, holds
its frame, names, brackets, keywords and sets, and no value but
``true``/``false``/``null``, so the lines of an export have few distinct
skeletons (the benchmark's 1 M items: 16). Each distinct skeleton is checked
and rewritten once (``skeletons_sql``), by a few RE2 replacements that see no
value: ``{`` becomes ``{"M":{`` and so on, a name gets its quotes, a number's
place ``{"N":"…"}``, a set's members plain strings (only where the set holds
nothing else), and so on; then each place is written as the index of its
text in the line's ``vals`` or ``strs``, a JSON string (``"3"``). That is the
skeleton's ``line``: its translation with indexes for values. A chunk's
structure is sampled from these, and ``from_json`` of a skeleton's ``line``
with the structure's type, its places as INTEGER (``index_type``), is done
once per skeleton; a line's struct then takes each index leaf's text from its
lists (``struct_sql``; strings decoded as JSON decodes them, where the line
has an escape). The guard's length check uses the translation's length,
the skeleton's fixed part plus the line's texts (``translen``). A pass over a
line costs about a microsecond whatever it finds, a regexp match about 0.2
more, list lambdas about 0.1 µs an element (decision 0036): a line pays for
the split, the pattern's two passes, the join to its skeleton, one JSON
check of its texts and the struct's assembly, no JSON text and no parse of
its own.

Invariant: a line's struct is the struct ``from_json`` gives its translation
(``struct_sql`` says the two differences nothing reads), and its ``translen``
and ``strings_ok`` are what the JSON guard computes on that translation, so
the guard admits exactly the lines it would admit from their translations.
Why: the translation is the skeleton's ``line`` with each index string
replaced by its place's text, a JSON string for a JSON string, so both parse
to structs of one shape, every place at the same leaf (``from_json`` reads a
value by its position in the document, never by its text); each skeleton
keeps every place of its line, one for one and of its kind (else it has no
``line``), so index ``i`` is the ``i``-th text of its kind. The translation
itself is the Ion line token for token, because each rewrite turns one Ion
token in its own place into one JSON token (a name into a name, a value into
a value, a bracket into a bracket pair of the same kind), and every value
taken out goes back into the place it left (a blob's place, ``{`` and a
marker, is no number's: a number's follows ``:``, ``[`` or ``,``). A type tag
is only ever written with a value of its JSON type, so the guard's type scan
is not needed (``fast_sql``), and each VARCHAR leaf of the structure is a
place. Anything else left in the text (a symbol value, a float, a timestamp,
an annotation other than a set's, a string as a field name, a keyword or
``$`` symbol id as a name, a comment, a stray quote from a quoted symbol
holding one, a number with two points, a set member of another type) leaves
a skeleton whose translation is invalid JSON, so no ``line``. Lines of the
wrong frame or holding a control character (the markers) have none either:
outside the strings by a check of the skeleton (and of the raw line for the
markers themselves), inside them by ``json_valid`` of the line's texts as a
JSON array (``strings_ok``), which refuses any, and any escape JSON lacks.
The guard then proves the rest as for JSON (canonical numbers and binaries,
lengths), so a line is indexed only where the Python parser would give the
same item.
"""

from __future__ import annotations

from dynadex.store.layout.names import literal, quote

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
        # on every skeleton, not only those holding the annotation: a lambda inside a CASE costs DuckDB 3x more
        steps.append(_set_members("o", tag, members))
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


def skeletons_sql(lines: str, marked: bool = False) -> str:
    """Each distinct skeleton of ``lines`` (column ``skel``) rewritten once: ``sid``, a number for it; ``line``,
    its translation with each place holding the index of its text as a JSON string (a value's place its
    index in the line's ``vals``, a string's in its ``strs``), or NULL where the translation is
    invalid JSON or its rewrite did not keep every place, one for one and of its kind; ``fixed``, the length of
    a line's translation less the texts of its places; with ``marked``, also ``marked``, the translation with
    each place a marker (the text translation, ``ion_lines_sql``)."""
    sql = f"SELECT skel, skel AS o FROM (SELECT DISTINCT skel FROM {lines} WHERE skel IS NOT NULL)"
    for step in rewrite_steps():
        sql = f"SELECT * REPLACE ({step} AS o) FROM ({sql})"
    item = f"{_ITEM} || o[{len(_BRACKETS[0][1])}:-2] || '}}'"  # {"M":{…}} -> {"Item":{…}}

    def count(text: str, c: str) -> str:
        return f"(strlen({text}) - strlen(replace({text}, {_chr(c)}, '')))"
    nv, ns = count("skel", _VALUE), count("skel", _SLOT)
    kept = f"{count('t', _VALUE)} = {nv} AND {count('t', _SLOT)} = {ns}"
    values = (f"array_to_string(list_transform(string_split(t, {_chr(_VALUE)}), "
              "(p, i) -> CASE WHEN i = 1 THEN p ELSE (i - 1)::VARCHAR || p END), '')")
    numbered = (f"array_to_string(list_transform(string_split({values}, {_chr(_SLOT)}), "
                "(p, i) -> CASE WHEN i = 1 THEN p ELSE (i - 1)::VARCHAR || p END), '')")
    # numbered whatever the check says (a lambda inside a CASE costs DuckDB 3x more), then kept or not
    sql = (f"SELECT skel, {kept} AS kept, {numbered} AS n, strlen(t) - {nv} - {ns} AS fixed, t AS marked "
           f"FROM (SELECT skel, {item} AS t FROM ({sql}))")
    return (f"SELECT row_number() OVER () AS sid, skel, CASE WHEN kept AND json_valid(n) THEN n END AS line, fixed"
            f"{', marked' if marked else ''} FROM ({sql})")


def line_parts_sql(source: str) -> str:
    """SELECT every column of ``source`` (Ion text in ``raw``) plus ``skel``, its skeleton, ``vals``, its
    values' texts as they go into the translation, and ``strs``, its strings' (escapes as markers); NULL
    where the line cannot be split (see the module)."""
    # escapes set aside; a line holding a marker they could be mistaken for has none (NULL). The frame stays in
    # the skeleton (checked and taken off there, once per skeleton)
    body = (f"CASE WHEN NOT contains(raw, '\\') THEN raw WHEN NOT (contains(raw, {_chr(_BSL)}) OR "
            f"contains(raw, {_chr(_QUOTE)})) THEN replace(replace(raw, {literal(BSL2)}, {_chr(_BSL)}), "
            f"{literal(ESC_QUOTE)}, {_chr(_QUOTE)}) END")
    frame = " AND ".join(f"NOT contains(raw, {_chr(c)})" for c in _EXTRACTED)
    # a value's text: a blob's base64, or a number without the character before it and a last point ("103.")
    value = "CASE WHEN starts_with(v, '{') THEN v[3:-3] WHEN suffix(v, '.') THEN v[2:-2] ELSE v[2:] END"
    values = literal(VALUES)
    return (f"SELECT * EXCLUDE (o), list_transform(regexp_extract_all(o, {values}), v -> {value}) AS vals, "
            f"regexp_replace(o, {values}, '\\2\\1' || {_chr(_VALUE)}, 'g') AS skel FROM ("
            f"SELECT * EXCLUDE (parts), CASE WHEN len(parts) % 2 = 1 THEN array_to_string("
            f"list_slice(parts, 1, -1, 2), {_chr(_SLOT)}) END AS o, "
            f"list_slice(parts, 2, -1, 2) AS strs FROM ("
            f"SELECT *, CASE WHEN {frame} THEN string_split({body}, '\"') END AS parts FROM {source}))")


def _restored(text: str) -> str:
    """``text`` with its escape markers back as the escapes they stand for, where the raw line has any."""
    return (f"CASE WHEN contains(raw, '\\') THEN replace(replace({text}, {_chr(_BSL)}, {literal(BSL2)}), "
            f"{_chr(_QUOTE)}, {literal(ESC_QUOTE)}) ELSE {text} END")


def ion_tables_sql(source: str) -> list[str]:
    """Statements over ``source`` (Ion text in ``raw``; the first reads it): the temp tables ``ion_parts`` (each
    line's parts, ``line_parts_sql``), ``ion_skeletons`` (``skeletons_sql``), and a SELECT of every column of
    ``source`` plus ``sid``, its skeleton's, ``vals``, its values' texts, ``strs``, its strings (decoded),
    ``strings_ok``, whether its strings are JSON strings once escaped back (no control character, only JSON's
    escapes; else ``strs`` is NULL), and ``translen``, the length of its translation (``struct_sql`` builds
    its typed struct from these), to run last; ``ion_parts`` can go after it."""
    create = [f"CREATE TEMP TABLE ion_parts AS {line_parts_sql(source)}",
              f"CREATE TEMP TABLE ion_skeletons AS {skeletons_sql('ion_parts')}"]
    # the strings as one JSON array: valid exactly where each is a JSON string (json_valid refuses control
    # characters and escapes JSON lacks); decoded only where a line holds an escape
    array = "'[\"' || " + _restored("array_to_string(l.strs, '\",\"')") + " || '\"]'"
    select = (f"SELECT * EXCLUDE (q, strs, fixed), CASE WHEN strings_ok THEN CASE WHEN contains(raw, '\\') THEN "
              "from_json(q, '[\"VARCHAR\"]') ELSE strs END END AS strs, "
              "fixed + strlen(array_to_string(vals, '')) + strlen(q) - 4 - 3 * greatest(len(strs) - 1, 0) AS translen "
              "FROM (SELECT *, coalesce(json_valid(q), false) AS strings_ok FROM ("
              f"SELECT l.* EXCLUDE (skel), s.sid, s.fixed, {array} AS q "
              "FROM ion_parts l LEFT JOIN ion_skeletons s ON l.skel = s.skel))")
    return [*create, select]


def struct_sql(k: str, vals: str, strs: str, structure: dict) -> str:
    """The struct ``from_json`` gives for a line's translation with the item type of ``structure``, built from
    ``k``, its skeleton's ``line`` parsed with ``index_type(structure)`` (each place's index), and the line's
    ``vals`` and ``strs``: each index leaf takes its text (an S or an SS member a string's, an N, a B or a
    member of an NS or a BS a value's: the rewrites write no other). Two differences, which nothing reads: an
    absent attribute value is a struct of NULLs, not NULL (every expression of ``fast_sql`` reads a value
    through its tags' fields), and a list the structure has only ever seen empty keeps its elements' index
    text; and where ``k`` is NULL (no skeleton ``line``: the guard refuses the line) a struct of NULLs."""
    n = iter(range(1, 1 << 30))

    def av(e: str, spec: dict) -> str:
        fields = []
        for tag, sub in spec.items():
            f = f"{e}.{quote(tag)}"
            if tag in ("S", "N", "B"):
                x = f"{strs if tag == 'S' else vals}[{f}]"
            elif tag in ("SS", "NS", "BS"):
                x = f"list_select({strs if tag == 'SS' else vals}, {f})"
            elif tag == "M":
                x = f"CASE WHEN {f} IS NOT NULL THEN {fields_sql(f, sub)} END"
            elif tag == "L" and sub[0] != "NULL":
                v = f"y{next(n)}"
                x = f"list_transform({f}, {v} -> {av(v, sub[0])})"
            else:  # BOOL, NULL and a list only ever empty: as parsed
                x = f
            fields.append(f"{quote(tag)} := {x}")
        return f"struct_pack({', '.join(fields)})"

    def fields_sql(e: str, fields: dict) -> str:
        packed = [f"{quote(name)} := {av(e + '.' + quote(name), child)}" for name, child in fields.items()]
        return f"struct_pack({', '.join(packed)})"

    # not NULL where ``k`` is: such a line has no skeleton ``line``, so the guard refuses it (no CASE around the
    # whole: a lambda inside a CASE costs DuckDB 3x more)
    return f"struct_pack(\"Item\" := {fields_sql(f'{k}.Item', structure)})"


def index_type(structure: dict) -> dict:
    """The from_json type of ``structure``'s items (``fast_structure.duck_type``) with every value's and set
    member's VARCHAR an INTEGER: a skeleton's places hold indexes. A list only ever empty stays VARCHAR[]
    (``struct_sql``)."""
    def av(spec: dict) -> dict:
        out = {}
        for tag, sub in spec.items():
            if tag in ("S", "N", "B"):
                out[tag] = "INTEGER"
            elif tag in ("SS", "NS", "BS"):
                out[tag] = ["INTEGER"]
            elif tag == "M":
                out[tag] = index_type(sub)
            elif tag == "L":
                out[tag] = ["VARCHAR"] if sub[0] == "NULL" else [av(sub[0])]
            else:
                out[tag] = sub
        return out

    return {name: av(spec) for name, spec in structure.items()}


def ion_lines_sql(source: str) -> str:
    """SELECT every column of ``source`` plus ``json``: the DynamoDB JSON line ``{"Item":{…}}`` of the Ion line
    in its column ``raw``, or NULL (see the module): the translation as text, which the build never writes
    (``struct_sql`` builds its struct straight from the skeleton and the values); the tests read it."""
    lines = line_parts_sql(source)
    places = literal("[" + _VALUE + _SLOT + "]")
    # each place's index in the line's values then strings: its rank when the values' places sort first
    order = (f"list_grade_up(list_grade_up(list_transform(regexp_extract_all(marked, {places}), "
             f"(k, i) -> CASE WHEN k = {_chr(_VALUE)} THEN i ELSE i + {1 << 30} END)))")
    joined = ("array_to_string(list_transform(s.pieces, (p, i) -> p || "
              "coalesce(list_concat(l.vals, l.strs)[s.order[i]], '')), '')")
    skeletons = skeletons_sql("ion_lines", marked=True)
    sql = (f"WITH ion_lines AS MATERIALIZED ({lines}), ion_skeletons AS (SELECT *, "
           f"string_split_regex(marked, {places}) AS pieces, {order} AS order FROM ({skeletons})) "
           "SELECT l.* EXCLUDE (skel, vals, strs), CASE WHEN s.line IS NOT NULL "
           f"AND len(l.vals) + len(l.strs) = len(s.pieces) - 1 "
           f"THEN {joined} END AS j FROM ion_lines l LEFT JOIN ion_skeletons s ON l.skel = s.skel")
    sql = f"SELECT * EXCLUDE (j), {_restored('j')} AS c FROM ({sql})"
    return f"SELECT * EXCLUDE (c), CASE WHEN json_valid(c) THEN c END AS json FROM ({sql})"
