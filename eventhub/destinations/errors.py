"""How a destination says a delivery failed: retry later, or never."""


class DestinationError(Exception):
    """A destination refused or failed the delivery; the message is recorded on it."""


class PermanentError(DestinationError):
    """A failure that no retry can fix (unknown handler, bad target): the delivery goes dead."""
