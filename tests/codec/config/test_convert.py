from dataclasses import dataclass, field
from typing import Literal

import pytest

from codec.config.convert import ConfigError, from_dict, to_dict


@dataclass(frozen=True)
class Inner:
    rate: float
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str
    steps: int
    inner: Inner
    sizes: tuple[int, ...] = (1, 2)
    items: list[Inner] = field(default_factory=list)


def test_round_trip_and_defaults():
    cfg = from_dict(Outer, {"name": "x", "steps": 3, "inner": {"rate": 1}, "items": [{"rate": 2.5, "mode": "b"}]})
    assert cfg == Outer("x", 3, Inner(1.0), (1, 2), [Inner(2.5, "b")])
    assert isinstance(cfg.inner.rate, float)
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "x", "steps": 3, "inner": {"rate": 1}, "stepz": 1}, "unknown key(s) ['stepz']"),
        ({"name": "x", "inner": {"rate": 1}}, "missing key 'steps'"),
        ({"name": "x", "steps": 1.5, "inner": {"rate": 1}}, "Outer.steps: expected an integer"),
        ({"name": "x", "steps": True, "inner": {"rate": 1}}, "Outer.steps: expected an integer"),
        ({"name": "x", "steps": 1, "inner": {"rate": "fast"}}, "Outer.inner.rate: expected a number"),
        ({"name": "x", "steps": 1, "inner": {"rate": 1, "mode": "c"}}, "Outer.inner.mode"),
        ({"name": "x", "steps": 1, "inner": {"rate": 1}, "items": [{"rat": 1}]}, "Outer.items[0]"),
    ],
)
def test_rejects_bad_values_with_their_path(data, message):
    with pytest.raises(ConfigError) as exc:
        from_dict(Outer, data)
    assert message in str(exc.value)


def test_yaml_style_exponent_string_is_a_float():
    assert from_dict(Inner, {"rate": "1e-5"}).rate == 1e-5
