"""How a destination says a delivery failed: retry later, or never."""


class DestinationError(Exception):
    """A destination refused or failed the delivery; the message is recorded on it."""


class PermanentError(DestinationError):
    """A failure that no retry can fix (unknown handler, bad target): the delivery goes dead."""


class HttpStatusError(DestinationError):
    """A webhook receiver answered with a status other than 2xx.

    ``status`` is the HTTP status; ``retry_after`` the raw ``Retry-After`` header value, or
    None when the answer had none (what a circuit breaker or backoff needs to read).
    """

    def __init__(self, message: str, *, status: int, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
