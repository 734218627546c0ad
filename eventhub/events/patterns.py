"""Route content filters: EventBridge-style event patterns over CloudEvents envelopes.

A pattern is a dict that mirrors the envelope's shape. Its leaves are lists of
matchers; a field matches when any matcher in its list matches (OR), and the
pattern matches when every field matches (AND). Nested dicts descend into
nested keys, e.g. ``{"data": {"order": {"status": ["paid"]}}}``.

Matchers: literal values (string, number, true/false, null), and the objects
``prefix``, ``suffix``, ``equals-ignore-case``, ``anything-but`` (a value, a
list of values, or ``{"prefix"|"suffix"|"equals-ignore-case": ...}``),
``numeric`` (``[">", 0, "<=", 100]``) and ``exists`` (true/false).

Like EventBridge, the event is read as a set of leaf values per field path:
arrays are flattened, so a field holding a list matches when any element
matches, and objects are not leaves (``exists`` looks at leaf values only).

This module is plain Python on purpose: the admin form, ``emit()`` and tests
all use it without Django being set up.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["PatternError", "match", "validate_pattern"]

_NUMERIC_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_LOWER_OPS = (">", ">=")
_UPPER_OPS = ("<", "<=")
_LITERAL_KINDS = "strings, numbers, true/false or null"


class PatternError(ValueError):
    """A route filter pattern is malformed; the message names the field path and the problem."""


# --- validation -------------------------------------------------------------


def validate_pattern(pattern: object) -> None:
    """Raise PatternError if ``pattern`` is not a well-formed event pattern.

    ``None`` and ``{}`` are valid and mean "match every event".
    """
    if pattern is None:
        return
    if not isinstance(pattern, dict):
        raise PatternError(
            f"pattern must be an object of field names to lists of matchers, got {type(pattern).__name__}"
        )
    _validate_fields(pattern, "")


def _validate_fields(fields: dict[Any, Any], parent: str) -> None:
    for key, sub in fields.items():
        if not isinstance(key, str) or not key:
            raise PatternError(f"{parent or 'pattern'}: field names must be non-empty strings, got {key!r}")
        path = f"{parent}.{key}" if parent else key
        if key.startswith("$"):
            # $or and friends are EventBridge features we chose not to support;
            # say so rather than silently treating "$or" as a field name.
            raise PatternError(f"{path}: {key} is not supported; use one route per alternative")
        if isinstance(sub, dict):
            if not sub:
                # Harmless in logic (matches all) but almost always a typo in the admin.
                raise PatternError(f"{path}: empty object; nest at least one field or remove it")
            _validate_fields(sub, path)
        elif isinstance(sub, list):
            _validate_leaf(sub, path)
        else:
            raise PatternError(
                f"{path}: expected a list of matchers or a nested object, got {sub!r}; "
                f"wrap a single value in a list: [{sub!r}]"
            )


def _validate_leaf(matchers: list[Any], path: str) -> None:
    if not matchers:
        raise PatternError(f"{path}: empty list matches nothing; give at least one value or matcher")
    for matcher in matchers:
        if isinstance(matcher, dict):
            _validate_matcher_object(matcher, path)
        elif not _is_literal(matcher):
            raise PatternError(
                f"{path}: {matcher!r} is neither a value ({_LITERAL_KINDS}) nor a matcher object"
            )


def _validate_matcher_object(matcher: dict[Any, Any], path: str) -> None:
    if len(matcher) != 1:
        raise PatternError(f"{path}: a matcher object needs exactly one key, got {list(matcher)!r}")
    ((name, arg),) = matcher.items()
    check = _CHECKS.get(name)
    if check is None:
        raise PatternError(f"{path}: unknown matcher {name!r}; use one of {', '.join(_CHECKS)}")
    check(name, arg, path)


def _check_string(name: str, arg: object, path: str) -> None:
    if not isinstance(arg, str):
        raise PatternError(f"{path}: {name} needs a string, got {arg!r}")


def _check_exists(name: str, arg: object, path: str) -> None:
    if not isinstance(arg, bool):
        raise PatternError(f"{path}: exists needs true or false, got {arg!r}")


def _check_anything_but(name: str, arg: object, path: str) -> None:
    if isinstance(arg, dict):
        _check_anything_but_object(arg, path)
        return
    values = arg if isinstance(arg, list) else [arg]
    if not values:
        raise PatternError(f"{path}: anything-but needs at least one value, got []")
    for value in values:
        if not _is_literal(value):
            raise PatternError(f"{path}: anything-but values must be {_LITERAL_KINDS}, got {value!r}")


def _check_anything_but_object(arg: dict[Any, Any], path: str) -> None:
    forms = ("prefix", "suffix", "equals-ignore-case")
    if len(arg) != 1 or next(iter(arg)) not in forms:
        raise PatternError(
            f"{path}: anything-but object needs exactly one of {', '.join(forms)}, got {list(arg)!r}"
        )
    ((form, inner),) = arg.items()
    # equals-ignore-case may exclude several spellings at once, as in EventBridge.
    values = inner if form == "equals-ignore-case" and isinstance(inner, list) else [inner]
    if not values:
        raise PatternError(f"{path}: anything-but {form} needs at least one string, got []")
    for value in values:
        _check_string(f"anything-but {form}", value, path)


def _check_numeric(name: str, arg: object, path: str) -> None:
    pairs = _numeric_pairs(arg)
    if pairs is None:
        raise PatternError(f"{path}: numeric needs pairs of operator and number, got {arg!r}")
    for op, _bound in pairs:
        if op not in _NUMERIC_OPS:
            raise PatternError(
                f"{path}: unknown numeric operator {op!r}; use one of {', '.join(_NUMERIC_OPS)}"
            )
    if len(pairs) == 2:
        _check_numeric_range(pairs, arg, path)


def _numeric_pairs(arg: object) -> list[tuple[str, int | float]] | None:
    """Split ``[op, n, op, n]`` into pairs, or None if the shape or types are wrong."""
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        return None
    pairs = list(zip(arg[::2], arg[1::2], strict=True))
    if all(isinstance(op, str) and _is_finite_number(n) for op, n in pairs):
        return pairs
    return None


def _check_numeric_range(pairs: list[tuple[str, int | float]], arg: object, path: str) -> None:
    lower = [p for p in pairs if p[0] in _LOWER_OPS]
    upper = [p for p in pairs if p[0] in _UPPER_OPS]
    if len(lower) != 1 or len(upper) != 1:
        raise PatternError(
            f"{path}: a numeric range needs one lower bound (> or >=) and one upper "
            f"bound (< or <=), got {arg!r}"
        )
    (lo_op, lo), (hi_op, hi) = lower[0], upper[0]
    # A range no number can satisfy is a mistake the operator wants to hear about.
    if lo > hi or (lo == hi and (lo_op, hi_op) != (">=", "<=")):
        raise PatternError(f"{path}: numeric range {arg!r} is empty; no number can match it")


_CHECKS: dict[str, Callable[[str, Any, str], None]] = {
    "prefix": _check_string,
    "suffix": _check_string,
    "equals-ignore-case": _check_string,
    "anything-but": _check_anything_but,
    "numeric": _check_numeric,
    "exists": _check_exists,
}


def _is_number(value: object) -> bool:
    # bool subclasses int in Python, but JSON true/false are not numbers.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite_number(value: object) -> bool:
    # math.isfinite would overflow on huge ints, and ints are always finite anyway.
    return _is_number(value) and (isinstance(value, int) or math.isfinite(value))  # type: ignore[arg-type]


def _is_literal(value: object) -> bool:
    return value is None or isinstance(value, str | bool) or _is_finite_number(value)


# --- matching ---------------------------------------------------------------


def match(pattern: dict[str, Any] | None, envelope: dict[str, Any]) -> bool:
    """Return True if ``envelope`` satisfies ``pattern``.

    ``None`` or ``{}`` matches every envelope. The pattern is assumed valid:
    call validate_pattern() first on anything a user typed.
    """
    if not pattern:
        return True
    return _match_fields(pattern, [envelope])


def _match_fields(fields: dict[str, Any], nodes: list[dict[str, Any]]) -> bool:
    """Match each field against the values found under it in any of ``nodes``."""
    for key, sub in fields.items():
        found = list(_flatten(node[key] for node in nodes if key in node))
        if isinstance(sub, dict):
            ok = _match_fields(sub, [v for v in found if isinstance(v, dict)])
        else:
            ok = _match_leaf(sub, [v for v in found if not isinstance(v, dict)])
        if not ok:
            return False
    return True


def _flatten(values: Iterable[Any]) -> Iterator[Any]:
    # EventBridge reads an array (even a nested one) as a set of candidate values.
    for value in values:
        if isinstance(value, list | tuple):
            yield from _flatten(value)
        else:
            yield value


def _match_leaf(matchers: list[Any], values: list[Any]) -> bool:
    return any(_matches(matcher, values) for matcher in matchers)


def _matches(matcher: Any, values: list[Any]) -> bool:
    if not isinstance(matcher, dict):
        return any(_same(matcher, value) for value in values)
    ((name, arg),) = matcher.items()
    if name == "exists":
        # An absent key, an empty list and an object all leave no leaf value here.
        return bool(values) is arg
    test = _TESTS[name]
    return any(test(arg, value) for value in values)


def _same(expected: Any, value: Any) -> bool:
    # JSON equality: 1 equals 1.0, but true is not 1 and "1" is not 1.
    return isinstance(expected, bool) is isinstance(value, bool) and expected == value


def _prefix(arg: str, value: Any) -> bool:
    return isinstance(value, str) and value.startswith(arg)


def _suffix(arg: str, value: Any) -> bool:
    return isinstance(value, str) and value.endswith(arg)


def _equals_ignore_case(arg: str | list[str], value: Any) -> bool:
    options = arg if isinstance(arg, list) else [arg]
    return isinstance(value, str) and value.casefold() in {option.casefold() for option in options}


def _anything_but(arg: Any, value: Any) -> bool:
    if isinstance(arg, dict):
        # The string forms only say something about strings; other types never match.
        ((form, inner),) = arg.items()
        return isinstance(value, str) and not _STRING_TESTS[form](inner, value)
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(_same(item, value) for item in excluded)


def _numeric(arg: list[Any], value: Any) -> bool:
    if not _is_number(value):
        return False
    return all(_NUMERIC_OPS[op](value, bound) for op, bound in zip(arg[::2], arg[1::2], strict=True))


_STRING_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "prefix": _prefix,
    "suffix": _suffix,
    "equals-ignore-case": _equals_ignore_case,
}
_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    **_STRING_TESTS,
    "anything-but": _anything_but,
    "numeric": _numeric,
}
