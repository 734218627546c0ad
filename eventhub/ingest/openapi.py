"""The OpenAPI 3.1 description of the ingest API, served at /api/openapi.json.

Kept true by tests: real responses are validated against it, and schemathesis sends
generated requests built from it.
"""

from typing import Any

from eventhub.ingest.cloudevents import BATCH, MAX_LENGTHS, STRUCTURED

RETRY_AFTER = {"schema": {"type": "integer"}, "description": "Seconds to wait before sending again."}
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
RESULT = {
    "application/json": {
        "schema": {
            "anyOf": [{"$ref": "#/components/schemas/Accepted"}, {"$ref": "#/components/schemas/BatchResult"}]
        }
    }
}
EXAMPLE_EVENT = {
    "specversion": "1.0",
    "id": "inv-2024-0042",
    "source": "/billing/php",
    "type": "order.paid",
    "subject": "order/42",
    "time": "2024-05-01T12:00:00Z",
    "datacontenttype": "application/json",
    "data": {"order_id": 42, "amount": 19.99},
}


def _string(max_length: int, description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "description": description}


def _ce_header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": f"ce-{name}",
        "in": "header",
        "required": False,
        "description": f"Binary mode: {description}",
        "schema": {"type": "string"},
    }


CLOUD_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvent 1.0 in structured JSON mode; extension attributes (lower-case letters "
    "and digits; strings, integers or booleans) and dataschema are kept and passed on; traceparent and "
    "tracestate (distributed tracing) are kept when valid and ignored otherwise.",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": _string(
            MAX_LENGTHS["id"],
            "Unique per source; a repeated (source, id) is a duplicate, or 409 if its content differs.",
        ),
        "source": _string(MAX_LENGTHS["source"], "URI-reference naming the producer."),
        "type": _string(MAX_LENGTHS["type"], "An event type defined in eventhub, e.g. order.paid."),
        "subject": {"type": "string", "maxLength": MAX_LENGTHS["subject"]},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string", "maxLength": MAX_LENGTHS["datacontenttype"]},
        "dataschema": {
            "type": "string",
            "maxLength": MAX_LENGTHS["dataschema"],
            "description": "Kept, never fetched.",
        },
        "data": {"description": "The payload, validated against the event type's JSON Schema."},
        "data_base64": {"type": "string", "contentEncoding": "base64", "description": "JSON or text data."},
        "traceparent": {"type": "string", "description": "W3C trace context of the event (kept when valid)."},
        "tracestate": {"type": "string", "description": "W3C trace state, with traceparent."},
    },
}

COMPONENTS: dict[str, Any] = {
    "securitySchemes": {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token created in the admin (eh_xxxxxxxx_...).",
        }
    },
    "schemas": {
        "CloudEvent": CLOUD_EVENT,
        "Accepted": {
            "type": "object",
            "required": ["id", "source", "event_id", "duplicate"],
            "properties": {
                "id": {"type": "string", "description": "The CloudEvents id sent."},
                "source": {"type": "string"},
                "event_id": {"type": "string", "format": "uuid", "description": "The stored event's id."},
                "duplicate": {"type": "boolean", "description": "Received before; not emitted again."},
            },
        },
        "BatchResult": {
            "type": "object",
            "required": ["events"],
            "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Accepted"}}},
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "description": "urn:eventhub:problem:<name>"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "index": {"type": "integer", "description": "Which event of a batch was refused."},
                "event_type": {"type": "string"},
                "path": {"type": "string", "description": "Where in data the schema failed."},
                "schema_message": {"type": "string", "description": "The JSON Schema's own message."},
            },
        },
    },
}


def events_operation() -> dict[str, Any]:
    """The POST /api/events operation."""
    return {
        "operationId": "sendEvents",
        "summary": "Send CloudEvents (structured, binary or batch mode)",
        "security": [{"bearer": []}],
        "parameters": [
            _ce_header("specversion", "must be 1.0; its presence selects binary mode."),
            _ce_header("id", "the event's id."),
            _ce_header("source", "the producer."),
            _ce_header("type", "the event type."),
            _ce_header("subject", "optional subject."),
            _ce_header("time", "optional RFC 3339 time."),
            _ce_header("traceparent", "optional W3C trace context of the event."),
            {
                "name": "traceparent",
                "in": "header",
                "required": False,
                "description": "W3C trace context of the call: events without their own join this trace.",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                STRUCTURED: {
                    "schema": {"$ref": "#/components/schemas/CloudEvent"},
                    "example": EXAMPLE_EVENT,
                },
                BATCH: {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/CloudEvent"}}},
                "application/json": {"schema": {"description": "Binary mode: the event's data."}},
                "text/plain": {"schema": {"type": "string", "description": "Binary mode: text data."}},
            },
        },
        "responses": {
            "202": {"description": "Accepted: at least one new event stored.", "content": RESULT},
            "200": {"description": "Every event was a duplicate; nothing new stored.", "content": RESULT},
            "400": {"description": "Malformed JSON, or not a CloudEvent.", "content": PROBLEM},
            "401": {"description": "Missing, invalid or expired API token.", "content": PROBLEM},
            "403": {"description": "Token revoked, or source or event type not allowed.", "content": PROBLEM},
            "409": {"description": "An id received before, now with different content.", "content": PROBLEM},
            "413": {"description": "Body over the size limit.", "content": PROBLEM},
            "415": {"description": "Binary data that is neither JSON nor text.", "content": PROBLEM},
            "422": {"description": "Unknown event type, or data invalid for its schema.", "content": PROBLEM},
            "429": {
                "description": "The token's events-per-minute limit is reached.",
                "headers": {"Retry-After": RETRY_AFTER},
                "content": PROBLEM,
            },
            "500": {"description": "The server failed; send the events again.", "content": PROBLEM},
            "503": {
                "description": "The database is unreachable; send the events again after Retry-After.",
                "headers": {"Retry-After": RETRY_AFTER},
                "content": PROBLEM,
            },
        },
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eventhub ingest API",
            "version": "1.0.0",
            "description": "Send CloudEvents 1.0 to eventhub from any language. See docs/api.md.",
        },
        "paths": {
            "/api/events": {"post": events_operation()},
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {}}}}
                    },
                }
            },
        },
        "components": COMPONENTS,
    }
