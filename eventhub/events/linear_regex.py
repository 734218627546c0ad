"""JSON Schema's regular expressions evaluated by RE2, in time linear in the string's length.

jsonschema evaluates ``pattern`` and ``patternProperties`` (and the property names that
``additionalProperties`` must skip) with Python's backtracking ``re``: a schema such as
``{"pattern": "^(a+)+$"}`` then takes seconds on a 25-character string, inside the caller's
transaction. Here those keywords use RE2 instead, which has no backtracking; a pattern RE2
cannot compile (back-references, look-around) is refused when the schema is saved. Strings
longer than ``EVENTHUB["SCHEMA_MAX_MATCH_LENGTH"]`` are refused rather than matched.
"""

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
from jsonschema import ValidationError

from eventhub.conf import eventhub_settings

# RE2 programs are small, but a schema may hold a pattern such as "a{1000}{1000}": cap its memory.
_RE2_MAX_MEM = 8 << 20
MAX_PATTERN_LENGTH = 1000


class UnsupportedPattern(ValueError):
    """A pattern that RE2 cannot run in linear time (or at all)."""


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program for ``pattern``; UnsupportedPattern when RE2 refuses it."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsupportedPattern(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        raise UnsupportedPattern(
            f"{pattern!r} cannot be evaluated in linear time ({_text(exc)}); "
            "back-references and look-around are not supported"
        ) from None


def _text(exc: Exception) -> str:
    message = exc.args[0] if exc.args else exc
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def _too_long(text: str) -> bool:
    return len(text) > eventhub_settings.SCHEMA_MAX_MATCH_LENGTH


def _long_error(what: str) -> ValidationError:
    limit = eventhub_settings.SCHEMA_MAX_MATCH_LENGTH
    return ValidationError(f"{what} is longer than {limit} characters, the most a pattern is matched against")


def pattern(validator: Any, patrn: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    """The ``pattern`` keyword, by RE2."""
    if not validator.is_type(instance, "string"):
        return
    if _too_long(instance):
        yield _long_error("The string")
    elif compile_pattern(patrn).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def pattern_properties(
    validator: Any, patterns: dict, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    """The ``patternProperties`` keyword, by RE2."""
    if not validator.is_type(instance, "object"):
        return
    for key in instance:
        if _too_long(key):
            yield _long_error(f"The property name {key[:40]!r}…")
    for patrn, subschema in patterns.items():
        program = compile_pattern(patrn)
        for key, value in instance.items():
            if not _too_long(key) and program.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=patrn)


def additional_properties(
    validator: Any, extra: Any, instance: Any, schema: dict
) -> Iterator[ValidationError]:
    """The ``additionalProperties`` keyword, skipping names that patternProperties match by RE2."""
    if not validator.is_type(instance, "object"):
        return
    extras = sorted(_additional(instance, schema), key=str)
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        if "patternProperties" in schema:
            names = ", ".join(repr(key) for key in extras)
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            yield ValidationError(f"{names} do{'es' if len(extras) == 1 else ''} not match any of {patterns}")
        else:
            names = ", ".join(repr(key) for key in extras)
            yield ValidationError(f"Additional properties are not allowed ({names} unexpected)")


def _additional(instance: dict, schema: dict) -> Iterator[str]:
    properties = schema.get("properties", {})
    programs = [compile_pattern(p) for p in schema.get("patternProperties", {})]
    for key in instance:
        if key in properties:
            continue
        if not _too_long(key) and any(p.search(key) is not None for p in programs):
            continue
        yield key


def regex_format(instance: object) -> bool:
    """The ``regex`` format: a string RE2 can compile (Python's re is never asked)."""
    if not isinstance(instance, str):
        return True
    try:
        compile_pattern(instance)
    except UnsupportedPattern:
        return False
    return True


KEYWORDS = {
    "pattern": pattern,
    "patternProperties": pattern_properties,
    "additionalProperties": additional_properties,
}
