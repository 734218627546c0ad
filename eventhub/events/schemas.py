"""JSON Schema checks for event data: one place that knows the schema dialect.

A schema is typed by an operator in the admin and evaluated on every emit, inside the
caller's transaction, so nothing in it may fetch or hang:

* ``$ref`` resolves only inside the schema itself (``#/$defs/...``): the registry below
  retrieves nothing, and a schema naming any other reference is refused when it is saved;
* ``pattern``, ``patternProperties`` and the ``regex`` format run on RE2 (linear time),
  see :mod:`eventhub.events.linear_regex`.
"""

import copy
import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.validators import extend, validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from eventhub.errors import InvalidEventData
from eventhub.events import linear_regex

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose values are data, not subschemas: a "$ref" inside them is just a value.
DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples", "example"})


class SchemaError(ValueError):
    """An event type's schema is not a valid JSON Schema, or not one eventhub may evaluate."""


def _refuse_retrieval(uri: str) -> Any:
    raise NoSuchResource(ref=uri)


# Knows no resource but the schema being evaluated (and the dialects' meta-schemas, which
# jsonschema ships); retrieving anything else fails instead of going to the network or disk.
LOCAL_ONLY = Registry(retrieve=_refuse_retrieval)


def check_schema(schema: Any) -> None:
    """Raise SchemaError when ``schema`` (None allowed: no schema) is not a JSON Schema eventhub runs."""
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise SchemaError('A JSON Schema must be an object, e.g. {"type": "object"}.')
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise SchemaError(f"Invalid JSON Schema{' at ' + where if where else ''}: {exc.message}") from exc
    _check_keywords(schema)
    _check_refs_resolve(schema)


def _check_keywords(schema: dict) -> None:
    has_pattern_properties = False
    for where, key, value in _walk(schema):
        if key in REF_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
            raise SchemaError(
                f"{where}{key} {value!r}: only references inside this schema (#/$defs/...) are "
                "allowed; eventhub never fetches schemas from URLs or files."
            )
        if key == "$id" and where:
            raise SchemaError(f"{where}$id: only the top of the schema may have an $id.")
        if key == "pattern" and isinstance(value, str):
            _check_pattern(f"{where}pattern", value)
        if key == "patternProperties" and isinstance(value, dict):
            has_pattern_properties = True
            for pattern in value:
                _check_pattern(f"{where}patternProperties", pattern)
    if has_pattern_properties and any(k == "unevaluatedProperties" for _, k, _ in _walk(schema)):
        raise SchemaError(
            "unevaluatedProperties cannot be combined with patternProperties here: "
            "use additionalProperties instead."
        )


def _check_pattern(where: str, pattern: str) -> None:
    try:
        linear_regex.compile_pattern(pattern)
    except linear_regex.UnsupportedPattern as exc:
        raise SchemaError(f"{where}: {exc}.") from None


def _walk(node: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (location, keyword, value) of a schema, not descending into data keywords."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield where, key, value
            if key not in DATA_KEYWORDS:
                yield from _walk(value, f"{where}{key}/")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{where}{index}/")


def _check_refs_resolve(schema: dict) -> None:
    resolver = LOCAL_ONLY.resolver_with_root(
        Resource.from_contents(schema, default_specification=DRAFT202012)
    )
    for where, key, value in _walk(schema):
        if key == "$ref" and isinstance(value, str):
            try:
                resolver.lookup(value)
            except Unresolvable:
                raise SchemaError(f"{where}$ref {value!r} points at nothing in this schema.") from None


def _format_checker(cls: Any) -> jsonschema.FormatChecker:
    checker = copy.copy(cls.FORMAT_CHECKER)
    checker.checkers = {**checker.checkers, "regex": (linear_regex.regex_format, ())}
    return checker


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Any:
    # Keyed by the schema's JSON text so an edited schema never reuses a stale validator.
    schema = json.loads(schema_json)
    base = validator_for(schema, default=jsonschema.Draft202012Validator)
    cls = extend(base, linear_regex.KEYWORDS)
    return cls(schema, registry=LOCAL_ONLY, format_checker=_format_checker(base))


def validate_data(event_type: str, schema: dict | None, data: Any) -> None:
    """Raise InvalidEventData with the schema's own message when ``data`` does not satisfy ``schema``."""
    if schema is None:
        return
    validator = _validator(json.dumps(schema, sort_keys=True))
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    except (Unresolvable, linear_regex.UnsupportedPattern) as exc:
        # Only a schema saved before these checks existed gets here; say what to fix.
        raise InvalidEventData(event_type, f"the event type's schema cannot be evaluated: {exc}") from None
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        raise InvalidEventData(event_type, error.message, path)
