"""Errors that eventhub's public functions raise for bad input."""


class EmitError(ValueError):
    """An event was refused; nothing was stored."""


class UnknownEventType(EmitError):
    """No event type has that name, or it is inactive."""


class InvalidEventData(EmitError):
    """Event data does not satisfy its type's JSON Schema; the message is the schema's."""

    def __init__(self, event_type: str, message: str, path: str = "") -> None:
        self.event_type = event_type
        self.path = path
        self.schema_message = message
        where = f" at {path}" if path else ""
        super().__init__(f"{event_type}: data{where}: {message}")
