"""The validated dataclasses behind the settings convert and reject values as the pydantic model they replaced did."""
from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from typing import Annotated

import pytest

from postline.validated import Field, Validated, ValidationError, field_validator

Name = Annotated[str, Field(min_length=1)]


@dataclass(frozen=True, init=False)
class Example(Validated):
    name: Name
    urls: dict[str, str]
    count: int = Field(default=10, gt=0)
    floor: int = Field(default=0, ge=0)
    flag: bool = False
    streams: tuple[str, ...] = ("a",)

    @field_validator("streams")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if set(value) - {"a", "b"}:
            raise ValueError("unknown streams")
        return value


def problems(**values) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        Example(**{"name": "n", "urls": {}, **values})
    return [(e["loc"][0], e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize("text, expected", [("1", 1), (" 2 ", 2), ("1_000", 1000), ("12.0", 12), ("+3", 3),
                                            ("00012", 12)])
def test_integers_from_strings_as_pydantic_lax_mode(text, expected):
    assert Example(name="n", urls={}, count=text).count == expected


@pytest.mark.parametrize("text", ["1.5", "12.", "0x10", "1e3", "", "lots", "٣"])
def test_unparseable_integers(text):
    assert problems(count=text) == [("count", "Input should be a valid integer, unable to parse string as an integer")]


def test_bounds_and_lengths():
    assert problems(count="0", floor="-1", name="") == [
        ("name", "String should have at least 1 character"), ("count", "Input should be greater than 0"),
        ("floor", "Input should be greater than or equal to 0")]


@pytest.mark.parametrize("text, expected", [("1", True), ("yes", True), ("TRUE", True), ("on", True), ("0", False),
                                            ("No", False), ("off", False), ("f", False)])
def test_booleans_from_strings(text, expected):
    assert Example(name="n", urls={}, flag=text).flag is expected


def test_missing_wrong_types_and_validators_are_all_reported_in_order():
    with pytest.raises(ValidationError) as caught:
        Example(urls=["x"], flag=" true ", streams=("c",))
    assert [(e["loc"][0], e["msg"]) for e in caught.value.errors()] == [
        ("name", "Field required"), ("urls", "Input should be a valid dictionary"),
        ("flag", "Input should be a valid boolean, unable to interpret input"),
        ("streams", "Value error, unknown streams")]
    assert problems(urls={"a": 1}) == [("urls", "Input should be a valid string")]


def test_defaults_frozen_and_copies_are_validated():
    example = Example(name="n", urls={"a": "u"})
    assert (example.count, example.floor, example.flag, example.streams) == (10, 0, False, ("a",))
    with pytest.raises(FrozenInstanceError):
        example.count = 3
    assert example.model_copy(update={"count": 3}).count == 3
    with pytest.raises(ValidationError):
        example.model_copy(update={"count": 0})
    with pytest.raises(TypeError):
        Example(name="n", urls={}, unknown=1)
