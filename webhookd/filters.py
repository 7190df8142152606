"""Filters: EventBridge / Event Ruler patterns matched against an object. Pure code.

A pattern mirrors the object's shape; a leaf is a list of matchers, any of which may
match: exact values, ``prefix``, ``suffix``, ``anything-but``, ``numeric``, ``exists``,
``equals-ignore-case``; ``"$or"`` takes a list of patterns. As in Event Ruler, arrays
in the object are flattened: a leaf matches if any element matches.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

Pattern = dict[str, Any]

_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_STRING_OPERATORS = ("prefix", "suffix", "equals-ignore-case")
_OPERATORS = {*_STRING_OPERATORS, "anything-but", "numeric", "exists"}


class PatternError(ValueError):
    """A pattern that is not valid Event Ruler syntax; the message names where."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and a == b


# -- validation ------------------------------------------------------------------------


def validate(pattern: Any, where: str = "filter") -> None:
    """Raise :class:`PatternError` naming the first problem in ``pattern``."""
    if not isinstance(pattern, dict) or not pattern:
        raise PatternError(f"{where}: a pattern is a non-empty table")
    for key, sub in pattern.items():
        here = f"{where}.{key}"
        if key == "$or":
            if not isinstance(sub, list) or len(sub) < 2:
                raise PatternError(f"{here}: \"$or\" takes a list of at least two patterns")
            for index, alternative in enumerate(sub):
                validate(alternative, f"{here}[{index}]")
        elif isinstance(sub, dict):
            validate(sub, here)
        elif isinstance(sub, list) and sub:
            for matcher in sub:
                _validate_matcher(matcher, here)
        else:
            raise PatternError(f"{here}: expected a list of values or matchers, or a table")


def _validate_matcher(matcher: Any, where: str) -> None:
    if _is_scalar(matcher):
        return
    if not isinstance(matcher, dict) or len(matcher) != 1:
        raise PatternError(f"{where}: a matcher is a value or a one-key table (prefix = \"x\")")
    (name, value), = matcher.items()
    if name not in _OPERATORS:
        raise PatternError(f"{where}: unknown operator {name!r} (one of {sorted(_OPERATORS)})")
    if name in _STRING_OPERATORS and not isinstance(value, str):
        raise PatternError(f"{where}: {name} takes a string")
    if name == "exists" and not isinstance(value, bool):
        raise PatternError(f"{where}: exists takes true or false")
    if name == "anything-but":
        if isinstance(value, dict):
            if len(value) != 1 or next(iter(value)) not in _STRING_OPERATORS:
                raise PatternError(f"{where}: anything-but takes values or one of prefix/suffix")
        elif isinstance(value, list):
            if not value or not all(_is_scalar(v) for v in value):
                raise PatternError(f"{where}: anything-but takes a list of values")
        elif not _is_scalar(value):
            raise PatternError(f"{where}: anything-but takes a value or a list of values")
    if name == "numeric":
        if not isinstance(value, list) or not value or len(value) % 2 or len(value) > 4:
            raise PatternError(f"{where}: numeric takes [op, number] or [op, n, op, n]")
        for op, bound in zip(value[::2], value[1::2], strict=True):
            if op not in _NUMERIC_OPS or not _is_number(bound):
                raise PatternError(f"{where}: numeric: {op!r} {bound!r} is not a comparison")


# -- matching --------------------------------------------------------------------------


def matches(pattern: Pattern, obj: Any) -> bool:
    """Whether ``obj`` matches ``pattern`` (validated beforehand)."""
    return _match(pattern, obj, ())


def _match(pattern: Pattern, obj: Any, prefix: tuple[str, ...]) -> bool:
    for key, sub in pattern.items():
        if key == "$or":
            if not any(_match(alternative, obj, prefix) for alternative in sub):
                return False
        elif isinstance(sub, dict):
            if not _match(sub, obj, (*prefix, key)):
                return False
        elif not _leaf(sub, _values(obj, (*prefix, key))):
            return False
    return True


def _values(node: Any, path: tuple[str, ...]) -> list[Any]:
    """The scalar values at ``path``, arrays flattened on the way and at the end."""
    if isinstance(node, list):
        return [value for element in node for value in _values(element, path)]
    if not path:
        return [node] if _is_scalar(node) else []
    if not isinstance(node, dict) or path[0] not in node:
        return []
    return _values(node[path[0]], path[1:])


def _leaf(matchers: list[Any], values: list[Any]) -> bool:
    for matcher in matchers:
        if isinstance(matcher, dict) and "exists" in matcher:
            if bool(values) == matcher["exists"]:
                return True
        elif any(_one(matcher, value) for value in values):
            return True
    return False


def _one(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, dict):
        return _same(matcher, value)
    (name, argument), = matcher.items()
    if name == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    if name == "suffix":
        return isinstance(value, str) and value.endswith(argument)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == argument.casefold()
    if name == "numeric":
        return _is_number(value) and all(
            _NUMERIC_OPS[op](value, bound)
            for op, bound in zip(argument[::2], argument[1::2], strict=True)
        )
    if name == "anything-but":
        if isinstance(argument, dict):
            return not _one(argument, value) and isinstance(value, str)
        if isinstance(argument, list):
            return not any(_same(excluded, value) for excluded in argument)
        return not _same(argument, value)
    return False
