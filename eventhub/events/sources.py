"""Which CloudEvents ``source`` values an API token may send: its allowed-sources patterns.

A pattern is an exact source (``/billing/php``), a prefix ending in ``*`` (``/billing/*``),
or ``*`` alone (any source). eventhub's own source (``EVENTHUB["DEFAULT_SOURCE"]``, the source
of events emitted in this project) and everything under it is never a token's to claim.
"""

from eventhub.conf import eventhub_settings

MAX_PATTERN_LENGTH = 500


class SourcePatternError(ValueError):
    """An allowed-sources pattern that is malformed or claims eventhub's own source."""


def parse_patterns(text: str) -> list[str]:
    """The patterns of a token's allowed-sources text (one a line, blanks ignored)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def is_reserved(source: str) -> bool:
    """Whether ``source`` is eventhub's own (or under it)."""
    own = eventhub_settings.DEFAULT_SOURCE.rstrip("/")
    return source == own or source.startswith(own + "/")


def check_patterns(text: str) -> list[str]:
    """The patterns of ``text``; SourcePatternError for a malformed one or one that claims eventhub's own."""
    patterns = parse_patterns(text)
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_LENGTH or "*" in pattern[:-1]:
            raise SourcePatternError(
                f"{pattern[:60]!r}: use an exact source, a prefix ending in * (/billing/*) or * alone."
            )
        own = eventhub_settings.DEFAULT_SOURCE
        if pattern != "*" and (is_reserved(pattern.rstrip("*")) or own.startswith(pattern.rstrip("*"))):
            raise SourcePatternError(
                f"{pattern!r} claims {own}, eventhub's own source: no token may send it."
            )
    return patterns


def source_allowed(patterns: list[str], source: str) -> bool:
    """Whether ``source`` matches one of ``patterns`` (and is not eventhub's own)."""
    if is_reserved(source):
        return False
    for pattern in patterns:
        if pattern == "*" or pattern == source:
            return True
        if pattern.endswith("*") and source.startswith(pattern[:-1]):
            return True
    return False
