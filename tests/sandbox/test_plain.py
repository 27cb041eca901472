"""Plain data: what may cross from a candidate to the host."""

from __future__ import annotations

import json
import math

import pytest

from codegym.sandbox.plain import NotPlainDataError, decode_plain, encode_plain

VALUES = [
    None,
    True,
    0,
    -(10**40),
    1.5,
    "héllo",
    b"\x00",
    2j,
    (1, (2,)),
    [1, [2]],
    {"k": (1, 2), 3: None},
    {1, 2},
    frozenset({"a"}),
    float("-inf"),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip_through_json_keeps_the_exact_type(value):
    decoded = decode_plain(json.loads(json.dumps(encode_plain(value))))
    assert decoded == value
    assert type(decoded) is type(value)


def test_nan_survives():
    assert math.isnan(decode_plain(json.loads(json.dumps(encode_plain(float("nan"))))))


@pytest.mark.parametrize(
    "value",
    [object(), type("Sly", (int,), {})(1), type("MyList", (list,), {})(), iter([1]), {"k": object()}],
    ids=["object", "int-subclass", "list-subclass", "iterator", "nested"],
)
def test_anything_else_is_refused(value):
    with pytest.raises(NotPlainDataError, match="not plain data"):
        encode_plain(value)


def test_depth_and_size_are_bounded():
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(NotPlainDataError, match="deeper"):
        encode_plain(deep)
    with pytest.raises(NotPlainDataError, match="more than 10 elements"):
        encode_plain(list(range(20)), max_items=10)
