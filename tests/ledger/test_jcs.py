"""RFC 8785 (JCS) canonical JSON against the RFC's own examples, and fast path = reference path.

Vectors are from RFC 8785 (https://www.rfc-editor.org/rfc/rfc8785): §3.2.2 (the combined
sample and its output), §3.2.3 (member sorting by UTF-16 code units) and Appendix B (IEEE 754
doubles and their serialization).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.core import jcs
from gsomia.core.jcs import canonical_json

APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "want"), APPENDIX_B)
def test_appendix_b_numbers(bits: str, want: str) -> None:
    assert canonical_json(double(bits)) == want
    assert canonical_json({"n": [double(bits)]}) == f'{{"n":[{want}]}}'


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_appendix_b_nan_and_infinities_are_refused(bits: str) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        canonical_json({"n": double(bits)})


def test_section_3_2_2_sample() -> None:
    parsed = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    out = canonical_json(parsed)
    assert out == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    # §3.2.4: the same output as UTF-8 bytes, as the RFC lists them
    assert out.encode("utf-8").hex(" ") == (
        "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 75 65 2c 66 61 6c 73 65 5d "
        "2c 22 6e 75 6d 62 65 72 73 22 3a 5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 "
        "2c 31 65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 5d 2c 22 73 74 72 69 "
        "6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f "
        "22 7d"
    )


def test_section_3_2_3_sorting_by_utf16_code_units() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    assert canonical_json(value) == (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    # Code point order would put the emoji last: this is the case the fast path must not take.
    assert not jcs._plain(value, 0)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"n": 2**53}, ValueError),
        ({"n": -(2**53)}, ValueError),
        ({"n": math.nan}, ValueError),
        ({"b": b"bytes"}, TypeError),
        ({"s": {1, 2}}, TypeError),
        ({1: "non-string key"}, TypeError),
        ({"s": "lone \ud800 surrogate"}, ValueError),
    ],
)
def test_values_outside_i_json_are_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_json(value)


def test_deep_nesting_is_refused() -> None:
    value: Any = "x"
    for _ in range(jcs.MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(ValueError, match="deeper"):
        canonical_json(value)


def test_safe_integers_are_kept_exactly() -> None:
    assert canonical_json([2**53 - 1, -(2**53 - 1), True, 0]) == (
        "[9007199254740991,-9007199254740991,true,0]"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
json_values_with_floats = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_the_fast_path_writes_what_the_rfc_path_writes(value: Any) -> None:
    assert canonical_json(value) == "".join(jcs._serialize(value))


@settings(max_examples=200, deadline=None)
@given(json_values_with_floats)
def test_canonical_text_parses_back_to_the_value_and_is_a_fixed_point(value: Any) -> None:
    text = canonical_json(value)
    # JSON numbers are doubles: an integral float beyond 2**53 comes back as that double.
    parsed = json.loads(text, parse_int=lambda s: int(s) if abs(int(s)) < 2**53 else float(s))
    assert parsed == value or (value != value)  # floats round-trip exactly
    assert canonical_json(parsed) == text
