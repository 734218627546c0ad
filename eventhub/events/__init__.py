"""What an event is and which routes it matches: the envelope, data schemas, route filter patterns.

Pure functions over JSON: nothing here touches the database, so the models and
every stage of the flow can use them.
"""

from eventhub.events.envelope import envelope_of
from eventhub.events.patterns import PatternError, match, validate_pattern
from eventhub.events.schemas import SchemaError, check_schema, validate_data
from eventhub.events.sources import SourcePatternError, check_patterns, parse_patterns, source_allowed

__all__ = [
    "PatternError",
    "SchemaError",
    "SourcePatternError",
    "check_patterns",
    "check_schema",
    "envelope_of",
    "match",
    "parse_patterns",
    "source_allowed",
    "validate_data",
    "validate_pattern",
]
