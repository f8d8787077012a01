"""Validated frozen dataclasses: the part of pydantic that ``settings.Settings`` used, without pydantic.

The settings are built once per container, at cold start, from a few dozen environment variables; importing
pydantic (with pydantic-core and the schema it builds) for that was a sixth of the cold start of the functions that
need it for nothing else. The declarations read as they did under pydantic and validation gives the same messages:

    @dataclass(frozen=True, init=False)
    class Settings(Validated):
        table: Annotated[str, Field(min_length=1)]
        interval: int = Field(default=30, ge=0)

        @field_validator("table")
        @classmethod
        def _check(cls, value: str) -> str: ...

Construction validates (``Settings(**raw)``, and so ``dataclasses.replace``): a missing field is "Field required";
strings become ``int`` and ``bool`` as pydantic's lax mode converts them; ``gt``, ``ge`` and ``min_length`` are
checked; then each ``field_validator`` runs on its fields, a ``ValueError`` becoming "Value error, <message>". Every
problem is reported at once, in declaration order, by ``ValidationError`` (``errors()`` lists ``loc`` and ``msg``).
Supported types: ``str``, ``int``, ``float``, ``bool``, ``dict[str, str]``, ``tuple[str, ...]``, each also
``| None``, optionally ``Annotated`` with a ``Field``; anything else is a ``TypeError`` when the class is first
used, i.e. at cold start.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

_CONSTRAINTS = "postline.validated"
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


class ValidationError(ValueError):
    """Every problem found, as ``(field, message)`` pairs in declaration order."""

    def __init__(self, title: str, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} validation error(s) for {title}: "
            + "; ".join(f"{field}: {message}" for field, message in problems)
        )

    def errors(self) -> list[dict[str, Any]]:
        return [{"loc": (field,), "msg": message} for field, message in self.problems]


class _Invalid(Exception):
    pass


def Field(
    default: Any = dataclasses.MISSING,
    *,
    gt: float | None = None,
    ge: float | None = None,  # noqa: N802
    le: float | None = None,
    min_length: int | None = None,
) -> Any:
    """A field's default and constraints (as a dataclass field, so it works as the default of an attribute)."""
    constraints = {k: v for k, v in (("gt", gt), ("ge", ge), ("le", le), ("min_length", min_length)) if v is not None}
    return dataclasses.field(default=default, metadata={_CONSTRAINTS: constraints})


class _FieldValidator:
    def __init__(self, fields: tuple[str, ...], method: Any):
        self.fields, self.method = fields, method


def field_validator(*fields: str) -> Callable[[Any], _FieldValidator]:
    """Run the decorated classmethod on these fields once their type is checked; return the value to keep."""
    return lambda method: _FieldValidator(fields, method)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("Input should be a valid string")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, int):  # bool included, as pydantic's lax mode
        return int(value)
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise _Invalid("Input should be a valid integer, got a number with a fractional part")
    if isinstance(value, str):
        text = value.strip()
        whole, dot, fraction = text.partition(".")
        if dot and fraction and fraction.strip("0") == "":  # "12.0" is 12 (but "12." is not), as in pydantic
            text = whole
        if text.isascii():
            try:
                return int(text)
            except ValueError:
                pass
        raise _Invalid("Input should be a valid integer, unable to parse string as an integer")
    raise _Invalid("Input should be a valid integer")


def _float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Invalid("Input should be a valid number, unable to parse string as a number") from None
    else:
        raise _Invalid("Input should be a valid number")
    if number != number or number in (float("inf"), float("-inf")):
        raise _Invalid("Input should be a finite number")
    return number


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``X | None``: None (or an empty string, as an unset environment variable reads) is None."""
    return lambda value: None if value is None or value == "" else convert(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise _Invalid("Input should be a valid boolean, unable to interpret input")
    raise _Invalid("Input should be a valid boolean")


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _Invalid("Input should be a valid dictionary")
    for key, item in value.items():
        _string(key)
        _string(item)
    return dict(value)


def _string_tuple(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (tuple, list)):
        raise _Invalid("Input should be a valid tuple")
    return tuple(_string(item) for item in value)


_CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    str: _string,
    int: _integer,
    float: _float,
    bool: _boolean,
    dict[str, str]: _string_map,
    tuple[str, ...]: _string_tuple,
}


def _check(value: Any, constraints: dict[str, int]) -> None:
    if value is None:  # an optional field left unset
        return
    if "min_length" in constraints and len(value) < constraints["min_length"]:
        n = constraints["min_length"]
        raise _Invalid(f"String should have at least {n} character{'' if n == 1 else 's'}")
    if "gt" in constraints and not value > constraints["gt"]:
        raise _Invalid(f"Input should be greater than {constraints['gt']}")
    if "ge" in constraints and not value >= constraints["ge"]:
        raise _Invalid(f"Input should be greater than or equal to {constraints['ge']}")
    if "le" in constraints and not value <= constraints["le"]:
        raise _Invalid(f"Input should be less than or equal to {constraints['le']}")


class _Spec:
    __slots__ = ("name", "default", "convert", "constraints", "validators")

    def __init__(self, name: str, default: Any, convert: Callable[[Any], Any], constraints: dict[str, int]):
        self.name, self.default, self.convert, self.constraints = name, default, convert, constraints
        self.validators: list[Callable[[Any], Any]] = []


def _specs(cls: type[Validated]) -> list[_Spec]:
    found = cls.__dict__.get("_validated_specs")
    if found is not None:
        return found
    hints = typing.get_type_hints(cls, include_extras=True)
    specs = []
    for field in dataclasses.fields(cls):
        hint, constraints = hints[field.name], dict(field.metadata.get(_CONSTRAINTS, {}))
        if typing.get_origin(hint) is typing.Annotated:
            hint, *extras = typing.get_args(hint)
            for extra in extras:
                if isinstance(extra, dataclasses.Field):
                    constraints.update(extra.metadata.get(_CONSTRAINTS, {}))
        arguments = typing.get_args(hint)
        optional = type(None) in arguments and len(arguments) == 2
        if optional:
            hint = next(argument for argument in arguments if argument is not type(None))
        if hint not in _CONVERTERS:
            raise TypeError(f"{cls.__name__}.{field.name}: unsupported type {hint!r}")
        convert = _optional(_CONVERTERS[hint]) if optional else _CONVERTERS[hint]
        specs.append(_Spec(field.name, field.default, convert, constraints))
    by_name = {spec.name: spec for spec in specs}
    for klass in reversed(cls.__mro__):
        for attribute in vars(klass).values():
            if isinstance(attribute, _FieldValidator):
                for name in attribute.fields:
                    if name not in by_name:
                        raise TypeError(f"{cls.__name__}: validator for unknown field {name!r}")
                    by_name[name].validators.append(attribute.method.__get__(None, cls))
    cls._validated_specs = specs
    return specs


class Validated:
    """Base for ``@dataclass(frozen=True, init=False)`` classes whose construction validates every field."""

    # For the type checker: each subclass is a dataclass, and _specs caches its fields' specs on it.
    __dataclass_fields__: ClassVar[dict[str, Any]]
    _validated_specs: ClassVar[list[_Spec]]

    def __init__(self, **values: Any):
        specs = _specs(type(self))
        unknown = set(values) - {spec.name for spec in specs}
        if unknown:
            raise TypeError(f"{type(self).__name__} has no fields {sorted(unknown)}")
        problems: list[tuple[str, str]] = []
        for spec in specs:
            if spec.name not in values:
                if spec.default is dataclasses.MISSING:
                    problems.append((spec.name, "Field required"))
                else:
                    object.__setattr__(self, spec.name, spec.default)
                continue
            try:
                value = spec.convert(values[spec.name])
                _check(value, spec.constraints)
                for validator in spec.validators:
                    try:
                        value = validator(value)
                    except ValueError as error:
                        raise _Invalid(f"Value error, {error}") from None
            except _Invalid as problem:
                problems.append((spec.name, str(problem)))
                continue
            object.__setattr__(self, spec.name, value)
        if not problems:
            problems = self._problems_together()
        if problems:
            raise ValidationError(type(self).__name__, problems)

    def _problems_together(self) -> list[tuple[str, str]]:
        """(field, problem) for rules between fields, checked once each field is valid on its own."""
        return []

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Any:
        """A copy with some fields changed (validated), as pydantic's ``model_copy`` that callers already use."""
        return dataclasses.replace(self, **(update or {}))
