"""Typed records from YAML mappings: types checked from the dataclass annotations, ranges from
field metadata, every problem a :class:`ParamError` naming the key.

A field declares its range with :func:`bounded`::

    num_beams: int = bounded(1, ge=1)
    box_threshold: float = bounded(0.3, ge=0.0, le=1.0)

The types understood are the ones parameters use: ``bool``, ``int``, ``float``, ``str``, ``Literal``,
``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[K, V]`` and nested dataclasses.
YAML gives lists where tuples are declared (converted) and ints where floats are declared (converted);
a float is never silently truncated to an int, a bool is not a number, and a number is not a string.
PyYAML reads ``5e-5`` (no dot) as a string: such scientific-notation strings are accepted as numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


class ParamError(ValueError):
    """A parameter has a wrong type or value; ``key`` is its dotted path (``label.num_beams``)."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}" if key else problem)

    def under(self, prefix: str) -> ParamError:
        """The same error with ``prefix.`` in front of the key."""
        return ParamError(f"{prefix}.{self.key}" if self.key else prefix, self.problem)


@dataclass(frozen=True)
class Range:
    """Allowed values: ``ge <= v``, ``gt < v``, ``v <= le``, ``v < lt`` (each optional); for tuples, per item."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value: float) -> str | None:
        checks = ((self.ge, value >= (self.ge or 0), ">="), (self.gt, value > (self.gt or 0), ">"),
                  (self.le, value <= (self.le or 0), "<="), (self.lt, value < (self.lt or 0), "<"))
        failed = [f"{op} {bound:g}" for bound, ok, op in checks if bound is not None and not ok]
        if not failed and not (isinstance(value, float) and math.isnan(value)):
            return None
        wanted = " and ".join(f"{op} {bound:g}" for bound, _, op in checks if bound is not None)
        return f"must be {wanted}, got {value!r}"


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None) -> Any:
    """A dataclass field with ``default`` whose value (each item, for tuples) must lie in the range."""
    return dataclasses.field(default=default, metadata={"range": Range(ge, gt, le, lt)})


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ParamError(key, f"expected a number, got {_describe(value)}")
    if isinstance(value, str):
        if not _SCIENTIFIC.match(value.strip()):
            raise ParamError(key, f"expected a number, got {_describe(value)}")
        value = float(value)
    return float(value)


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(key, f"expected a whole number, got {_describe(value)}")
    return value


def _scalar(hint: Any, value: Any, key: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamError(key, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        return _integer(value, key)
    if hint is float:
        return _number(value, key)
    if hint is str:
        if not isinstance(value, str):
            raise ParamError(key, f"expected a string, got {_describe(value)}")
        return value
    return value  # a type parameters do not use: not checked


def _sequence(hint: Any, value: Any, key: str, build: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if not isinstance(value, list | tuple):
        raise ParamError(key, f"expected a list, got {_describe(value)}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ParamError(key, f"expected a list of {len(args)} items, got {len(value)}: {list(value)!r}")
        return tuple(coerce(a, v, f"{key}[{i}]", build) for i, (a, v) in enumerate(zip(args, value, strict=True)))
    item = args[0] if args else Any
    items = [coerce(item, v, f"{key}[{i}]", build) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def coerce(hint: Any, value: Any, key: str, build: Any = None) -> Any:
    """``value`` checked against the annotation ``hint`` (converted where YAML differs), or ParamError.

    ``build(cls, mapping, key)`` turns a mapping into a nested dataclass (default: ``cls(**mapping)``).
    """
    origin = get_origin(hint)
    if hint is Any:
        return value
    if hint is type(None):
        if value is not None:
            raise ParamError(key, f"expected null, got {_describe(value)}")
        return None
    if origin is typing.Union or origin is types.UnionType:
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        problems = []
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(option, value, key, build)
            except ParamError as err:
                problems.append(err.problem)
        suffix = " or null" if type(None) in options else ""
        raise ParamError(key, " / ".join(problems) + suffix)
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
            raise ParamError(key, f"must be one of {', '.join(repr(c) for c in choices)}; got {_describe(value)}")
        return value
    if origin in (tuple, list):
        return _sequence(hint, value, key, build)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamError(key, f"expected a mapping, got {_describe(value)}")
        key_hint, value_hint = get_args(hint) or (Any, Any)
        return {coerce(key_hint, k, key, build): coerce(value_hint, v, f"{key}.{k}", build) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ParamError(key, f"expected a mapping, got {_describe(value)}")
        return (build or (lambda cls, data, _key: cls(**data)))(hint, value, key)
    return _scalar(hint, value, key)


@functools.cache
def field_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of the dataclass ``cls`` (cached)."""
    return get_type_hints(cls)


def check_fields(record: Any) -> None:
    """Check and normalise every field of the frozen dataclass ``record`` in place (call from
    ``__post_init__``): types from the annotations, ranges from :func:`bounded` metadata."""
    hints = field_hints(type(record))
    for item in dataclasses.fields(record):
        value = coerce(hints[item.name], getattr(record, item.name), item.name)
        limits = item.metadata.get("range")
        if limits is not None and value is not None:
            for index, number in enumerate(value if isinstance(value, tuple) else (value,)):
                problem = limits.problem(number)
                if problem:
                    raise ParamError(item.name if not isinstance(value, tuple) else f"{item.name}[{index}]", problem)
        object.__setattr__(record, item.name, value)
