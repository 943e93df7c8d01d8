"""dynadex.types: exact, lossless DynamoDB values (genuine AWS items, edge numbers, errors, properties)."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynadex.types import (
    AttributeValueError,
    canonical,
    canonical_item,
    canonical_json,
    canonical_number,
    decode,
    decode_item,
    encode,
    encode_item,
    item_from_ion,
    parse_number,
)
from tests.support.exports import GENUINE_DIR_KEY, GENUINE_ROOT


def genuine_items() -> list[dict]:
    data = next((GENUINE_ROOT / GENUINE_DIR_KEY / "data").glob("*.json.gz")).read_bytes()
    return [json.loads(l)["Item"] for l in gzip.decompress(data).decode().splitlines() if l.strip()]


def test_genuine_export_items_decode_exactly():
    by_id = {decode_item(i)["id"]: decode_item(i) for i in genuine_items()}
    assert by_id["bar"] == {"id": "bar", "baz": Decimal(0)}
    assert by_id["foo"] == {"id": "foo", "bar": Decimal(42)}
    assert by_id["K3TXQk84Si"] == {
        "id": "K3TXQk84Si",
        "a": False,
        "b": None,
        "c": {"8gfX8dh0xa", "fRjHZJ2Ce9"},
        "d": {Decimal(3), Decimal(2)},
        "e": [Decimal(1), "Dsb87qc6Es"],
        "f": {"h": None, "i": True, "g": Decimal(9)},
        "j": b"hello",
        "k": {b"is fast", b"scylladb"},
    }


def test_genuine_items_round_trip_to_canonical_form():
    for item in genuine_items():
        assert encode_item(decode_item(item)) == canonical_item(item)
        # canonical form differs from AWS's only in set order
    rich = next(i for i in genuine_items() if i["id"]["S"] == "K3TXQk84Si")
    assert canonical_item(rich)["d"] == {"NS": ["2", "3"]}
    assert canonical_json(rich).startswith('{"a":{"BOOL":false},"b":{"NULL":true},"c":{"SS":["8gfX8dh0xa","fRjHZJ2Ce9"]}')


@pytest.mark.parametrize(
    "text, canonical_text",
    [
        ("1E-130", "0." + "0" * 129 + "1"),
        ("9.9999999999999999999999999999999999999E+125", "99999999999999999999999999999999999999" + "0" * 88),
        ("-0.000000000000000000000000000000000001", "-0.000000000000000000000000000000000001"),
        ("-9.9999999999999999999999999999999999999E+125", "-99999999999999999999999999999999999999" + "0" * 88),
        ("01.50", "1.5"),
        ("-0", "0"),
        ("0.000", "0"),
        ("1.5E2", "150"),
        ("1e100", "1" + "0" * 100),
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("1234567891234560000000000000000000000000", "1234567891234560000000000000000000000000"),
        ("+7", "7"),
        (".5", "0.5"),
        ("100", "100"),
    ],
)
def test_numbers_are_exact_and_normalised_like_dynamodb(text, canonical_text):
    assert canonical_number(text) == canonical_text
    assert Decimal(canonical_number(text)) == Decimal(text)
    assert decode({"N": text}) == Decimal(text)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("1E-131", "out of DynamoDB's range"),
        ("1E+126", "out of DynamoDB's range"),
        ("123456789012345678901234567890123456789", "39 significant digits"),
        ("abc", "not a number"),
        ("NaN", "not a number"),
        ("Infinity", "not a number"),
        ("1,5", "not a number"),
        ("", "not a number"),
        (" 1", "not a number"),
    ],
)
def test_bad_numbers_name_the_path(text, reason):
    with pytest.raises(AttributeValueError) as info:
        decode_item({"outer": {"M": {"inner": {"L": [{"S": "x"}, {"N": text}]}}}})
    assert reason in str(info.value)
    assert info.value.path == "outer.inner[1]"
    assert "outer.inner[1]" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_number_never_goes_through_float():
    # 0.1 + 0.2 in float is 0.30000000000000004; exact Decimals stay exact.
    assert decode({"N": "0.1"}) + decode({"N": "0.2"}) == Decimal("0.3")
    with pytest.raises(AttributeValueError, match="not exact"):
        encode(0.5, "price")
    assert encode(Decimal("1E+125"))["N"] == "1" + "0" * 125


@pytest.mark.parametrize(
    "av, path, reason",
    [
        ({"X": "1"}, "a", "unknown type tag 'X'"),
        ({"S": "a", "N": "1"}, "a", "exactly one type tag"),
        ({}, "a", "exactly one type tag"),
        ("plain", "a", "exactly one type tag"),
        ({"S": 1}, "a", "S must be a string"),
        ({"N": 1}, "a", "N must be a string"),
        ({"B": "not base64!"}, "a", "not valid base64"),
        ({"B": "aGVsbG8"}, "a", "not valid base64"),
        ({"BOOL": "true"}, "a", "BOOL must be true or false"),
        ({"NULL": False}, "a", "NULL must be true"),
        ({"SS": []}, "a", "must not be empty"),
        ({"SS": ["x", "x"]}, "a", "duplicate"),
        ({"NS": ["1", "1.0"]}, "a", "duplicate"),
        ({"NS": ["1", "x"]}, "a", "not a number"),
        ({"SS": [1]}, "a", "not a string"),
        ({"M": []}, "a", "M must be an object"),
        ({"L": {}}, "a", "L must be a list"),
    ],
)
def test_wrong_shapes_raise_with_path(av, path, reason):
    with pytest.raises(AttributeValueError) as info:
        decode(av, path)
    assert reason in str(info.value)
    assert info.value.path == path
    with pytest.raises(AttributeValueError):
        canonical(av, path)


def test_nested_error_path_through_maps_and_lists():
    with pytest.raises(AttributeValueError) as info:
        canonical_item({"a": {"L": [{"M": {"b c": {"Q": 1}}}]}})
    assert info.value.path == "a[0].b c"


def test_empty_strings_and_unicode_are_kept():
    item = {"e": {"S": ""}, "u": {"S": "naïve ☃ 𝄞 \u0000 日本"}, "k\"ey; --": {"SS": ["", "é"]}}
    assert decode_item(item)["u"] == "naïve ☃ 𝄞 \u0000 日本"
    assert encode_item(decode_item(item)) == canonical_item(item)
    assert json.loads(canonical_json(item)) == canonical_item(item)


def test_canonical_json_is_independent_of_input_order_and_spelling():
    a = {"z": {"NS": ["10", "9.50", "-1"]}, "a": {"M": {"y": {"N": "1.0"}, "x": {"BS": ["Yg==", "YQ=="]}}}}
    b = {"a": {"M": {"x": {"BS": ["YQ==", "Yg=="]}, "y": {"N": "01"}}}, "z": {"NS": ["-1", "9.5", "10"]}}
    assert canonical_json(a) == canonical_json(b)
    assert canonical_item(a)["z"] == {"NS": ["-1", "9.5", "10"]}


def test_ion_lines_decode_to_the_same_values():
    from amazon.ion import simpleion

    text = (
        '$ion_1_0 {Item:{id:"K3TXQk84Si",a:false,b:null,c:$dynamodb_SS::["fRjHZJ2Ce9","8gfX8dh0xa"],'
        'd:$dynamodb_NS::[3.,2d0],e:[1.,"Dsb87qc6Es"],f:{h:null,i:true,g:9.},j:{{aGVsbG8=}},'
        'k:$dynamodb_BS::[{{aXMgZmFzdA==}},{{c2N5bGxhZGI=}}]}}'
    )
    value = simpleion.loads(text, single_value=True)
    from_ion = item_from_ion(value["Item"])
    genuine = next(i for i in genuine_items() if i["id"]["S"] == "K3TXQk84Si")
    assert canonical_json(from_ion) == canonical_json(genuine)
    assert item_from_ion(simpleion.loads("{p:6d2, q:1d-130}", single_value=True)) == {
        "p": {"N": "600"},
        "q": {"N": "0." + "0" * 129 + "1"},
    }
    with pytest.raises(AttributeValueError, match="not exact"):
        item_from_ion(simpleion.loads("{p:1.5e0}", single_value=True))
    # a typed null is NULL, as null is (it once became the text of its Python object)
    assert item_from_ion(simpleion.loads("{p:null.string, q:null.int}", single_value=True)) == {
        "p": {"NULL": True}, "q": {"NULL": True}}


def test_encode_rejects_what_dynamodb_cannot_hold():
    with pytest.raises(AttributeValueError, match="empty set"):
        encode(set(), "s")
    with pytest.raises(AttributeValueError, match="only strings"):
        encode({"a", 1}, "s")
    with pytest.raises(AttributeValueError, match="no DynamoDB type"):
        encode(object(), "s")
    assert encode(True) == {"BOOL": True}
    assert encode(1) == {"N": "1"}


# ------------------------------------------------------------------ properties

_digits = st.integers(min_value=1, max_value=10**38 - 1)
numbers = st.builds(
    lambda sign, coeff, exp: Decimal(f"{sign}{coeff}E{exp}"),
    st.sampled_from(["", "-"]),
    _digits,
    st.integers(min_value=-130, max_value=125),
).filter(lambda d: -130 <= d.adjusted() <= 125) | st.just(Decimal(0))

scalars = (
    st.text(max_size=20)
    | numbers
    | st.binary(min_size=0, max_size=20)
    | st.booleans()
    | st.none()
    | st.sets(st.text(max_size=8), min_size=1, max_size=5)
    | st.sets(numbers, min_size=1, max_size=5)
    | st.sets(st.binary(max_size=8), min_size=1, max_size=5)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
items = st.dictionaries(st.text(min_size=1, max_size=12), values, min_size=1, max_size=8)


def _normalise(v):
    if isinstance(v, Decimal):
        return v.normalize() if v else Decimal(0)
    if isinstance(v, dict):
        return {k: _normalise(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_normalise(x) for x in v]
    if isinstance(v, set):
        return {_normalise(x) for x in v}
    return v


@settings(max_examples=300, deadline=None)
@given(items)
def test_round_trip_python_dynamodb_json_python(item):
    av = encode_item(item)
    text = canonical_json(av)
    back = decode_item(json.loads(text))
    assert _normalise(back) == _normalise(item)
    # canonical form is a fixed point
    assert canonical_item(json.loads(text)) == av
    assert canonical_json(json.loads(text)) == text


@settings(max_examples=300, deadline=None)
@given(numbers)
def test_number_text_round_trip_is_exact(d):
    text = canonical_number(format(d, "E"))
    assert Decimal(text) == d
    assert "E" not in text and "e" not in text
    assert canonical_number(text) == text
    assert parse_number(text) == d


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{0,40})?", fullmatch=True))
def test_fast_path_agrees_with_the_exact_path(text):
    try:
        slow = format(parse_number(text), "f")
    except AttributeValueError:
        with pytest.raises(AttributeValueError):
            canonical_number(text)
        return
    assert canonical_number(text) == slow


def test_canonical_takes_boto3_client_shapes():
    client_item = {"b": {"B": b"\x00\xff"}, "bs": {"BS": [b"y", b"x"]}, "m": {"M": {"n": {"B": b"hi"}}}}
    assert canonical_item(client_item) == {"b": {"B": "AP8="}, "bs": {"BS": ["eA==", "eQ=="]}, "m": {"M": {"n": {"B": "aGk="}}}}


@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.sampled_from(["S", "N", "B"]), st.text(max_size=12)),
                min_size=1, max_size=2, unique_by=lambda t: t[0]))
def test_key_text_is_canonical_json_of_the_key(attrs):
    """key_text builds the key string without the encoder; it must be byte-identical to canonical_json."""
    from dynadex.store.layout.shape import key_text

    key = {name: {tag: value} for name, tag, value in attrs}
    assert key_text(key, tuple(key)) == canonical_json(key, validated=True)
    assert key_text(key, tuple(reversed(tuple(key)))) == canonical_json(key, validated=True)


def test_nested_error_paths_are_built_on_the_way_out():
    bad = {"a": {"M": {"b": {"L": [{"S": "x"}, {"M": {"c": {"N": "1e999"}}}]}}}}
    with pytest.raises(AttributeValueError) as err:
        canonical_item(bad)
    assert err.value.path == "a.b[1].c"
    with pytest.raises(AttributeValueError) as err:
        canonical_item({"a": {"L": [{"L": [{"S": 5}]}]}})
    assert err.value.path == "a[0][0]"
