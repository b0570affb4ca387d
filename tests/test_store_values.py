"""Value folding shared by both adapters, and the stored JSON (orjson or stdlib, same meaning)."""

from __future__ import annotations

import enum
import json
import sqlite3

import pytest

from runtrace.store import values
from runtrace.store.records import EventRecord


class Tier(str, enum.Enum):
    FLEX = "flex"


class Count(enum.IntEnum):
    THREE = 3


@pytest.mark.parametrize(("value", "expected"), [
    ("s", "s"), (True, True), (7, 7), (0.5, 0.5),
    (Tier.FLEX, "flex"), (Count.THREE, 3),
    ([1, 2], (1, 2)), (("a", True), ("a", True)), ([], ()),
    ([Tier.FLEX, Count.THREE], ("flex", 3)),
    (b"\x00\x01", "AAE="), (bytearray(b"a"), "YQ=="),
    ({"b": 1, "a": [2, None]}, '{"a":[2,null],"b":1}'),
    ([1, [2]], "[1,[2]]"), (["x", None], '["x",null]'),
    ({"n": float("nan"), "i": float("-inf")}, '{"i":null,"n":null}'),
    (None, None),
])
def test_normalise_value(value: object, expected: object) -> None:
    folded = values.normalise_value(value)
    assert folded == expected
    assert type(folded) is type(expected)
    if isinstance(folded, tuple):
        assert [type(v) for v in folded] == [type(v) for v in expected]  # type: ignore[union-attr]


def test_normalise_attributes_drops_none_and_copies() -> None:
    source = {"a": 1, "b": None, "c": [1]}
    out = values.normalise_attributes(source)
    assert out == {"a": 1, "c": (1,)}
    assert out is not source
    assert values.normalise_attributes(None) == {}


TRICKY = {"nan": float("nan"), "inf": (1.0, float("inf")), "big": 2**70, "neg": -(2**63),
          "text": 'é\u2028"\\\n\x00', "tiny": 1e-9, "t": (True, "x"), "nested": {"k": [1.5]}}


@pytest.mark.parametrize("encode", [values._std_dumps, values._orjson_dumps] if values.orjson
                         else [values._std_dumps])
def test_stored_json_is_valid_and_means_the_same(encode: object) -> None:
    text = encode(TRICKY)  # type: ignore[operator]
    parsed = json.loads(text)
    assert parsed == {"nan": None, "inf": [1.0, None], "big": 2**70, "neg": -(2**63),
                      "text": 'é\u2028"\\\n\x00', "tiny": 1e-9, "t": [True, "x"], "nested": {"k": [1.5]}}
    with sqlite3.connect(":memory:") as conn:  # SQLite's json functions accept it
        assert conn.execute("SELECT json_extract(?, '$.tiny')", (text,)).fetchone()[0] == 1e-9
        assert conn.execute("SELECT json_valid(?)", (text,)).fetchone()[0] == 1


def test_json_round_trip_back_to_record_values() -> None:
    attrs = {"a": (1, 2), "b": "x", "c": 1.25, "d": False}
    assert values.attributes_from_json(values.dumps(attrs)) == attrs
    events = (EventRecord("e", 5, {"k": ("v",)}), EventRecord("f", 6))
    assert values.events_from_json(values.events_json(events)) == events
    assert values.events_json(()) == "[]"
    assert values.attributes_from_json(None) == {} and values.events_from_json("") == ()
