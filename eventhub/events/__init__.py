"""What an event is and which routes it matches: the envelope, data schemas, route filter patterns.

Pure functions over JSON: nothing here touches the database, so the models and
every stage of the flow can use them.
"""

from eventhub.events.envelope import envelope_of
from eventhub.events.keys import KeyTemplateError, check_key_template, render_key
from eventhub.events.patterns import PatternError, match, validate_pattern
from eventhub.events.schemas import SchemaError, check_schema, validate_data
from eventhub.events.sources import SourcePatternError, check_patterns, parse_patterns, source_allowed
from eventhub.events.transforms import IDENTITY, Transform, TransformError, check_headers, check_transform

__all__ = [
    "IDENTITY",
    "KeyTemplateError",
    "PatternError",
    "SchemaError",
    "Transform",
    "TransformError",
    "check_headers",
    "check_key_template",
    "SourcePatternError",
    "check_patterns",
    "check_schema",
    "check_transform",
    "envelope_of",
    "match",
    "render_key",
    "parse_patterns",
    "source_allowed",
    "validate_data",
    "validate_pattern",
]
