"""JSON Schema checks for event data: one place that knows the schema dialect."""

import json
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

from eventhub.errors import InvalidEventData


class SchemaError(ValueError):
    """An event type's schema is not a valid JSON Schema."""


def check_schema(schema: Any) -> None:
    """Raise SchemaError when ``schema`` (None allowed: no schema) is not a JSON Schema."""
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


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    # Keyed by the schema's JSON text so an edited schema never reuses a stale validator.
    schema = json.loads(schema_json)
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_data(event_type: str, schema: dict | None, data: Any) -> None:
    """Raise InvalidEventData with the schema's own message when ``data`` does not satisfy ``schema``."""
    if schema is None:
        return
    error = jsonschema.exceptions.best_match(_validator(json.dumps(schema, sort_keys=True)).iter_errors(data))
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        raise InvalidEventData(event_type, error.message, path)
