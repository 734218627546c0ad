"""Event type schemas: nothing in them can fetch, read files or hang (issue 14, item 2)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from eventhub.errors import InvalidEventData
from eventhub.events import SchemaError, check_schema, validate_data
from eventhub.models import EventType


@pytest.fixture
def schema_server():
    """An HTTP server that serves a schema and counts how often it is asked."""
    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            body = json.dumps({"type": "integer"}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


def test_a_remote_ref_is_refused_when_saved(schema_server):
    url, asked = schema_server
    schema = {"type": "object", "properties": {"n": {"$ref": f"{url}/n.json"}}}
    with pytest.raises(SchemaError, match="only references inside this schema"):
        check_schema(schema)
    assert asked == []


def test_a_file_ref_is_refused_when_saved(tmp_path):
    (tmp_path / "n.json").write_text('{"type": "integer"}')
    with pytest.raises(SchemaError, match="only references inside this schema"):
        check_schema({"$ref": f"file://{tmp_path}/n.json"})


def test_a_remote_ref_in_a_schema_saved_before_is_never_fetched(schema_server):
    url, asked = schema_server
    schema = {"type": "object", "properties": {"n": {"$ref": f"{url}/n.json"}}}
    with pytest.raises(InvalidEventData, match="cannot be evaluated"):
        validate_data("t.x", schema, {"n": "not an integer"})
    assert asked == []


def test_local_defs_still_resolve():
    schema = {
        "type": "object",
        "$defs": {"amount": {"type": "number", "minimum": 0}},
        "properties": {"amount": {"$ref": "#/$defs/amount"}},
    }
    check_schema(schema)
    validate_data("t.x", schema, {"amount": 3})
    with pytest.raises(InvalidEventData, match="less than the minimum"):
        validate_data("t.x", schema, {"amount": -1})


def test_a_local_ref_to_nothing_is_refused():
    with pytest.raises(SchemaError, match="points at nothing"):
        check_schema({"properties": {"a": {"$ref": "#/$defs/missing"}}})


def test_a_ref_like_value_inside_const_is_data():
    check_schema({"const": {"$ref": "http://example.com/x"}})


def test_a_catastrophic_pattern_runs_in_linear_time():
    schema = {"type": "string", "pattern": "^(a+)+$"}
    check_schema(schema)
    started = time.monotonic()
    with pytest.raises(InvalidEventData, match="does not match"):
        validate_data("t.x", schema, "a" * 5000 + "!")
    assert time.monotonic() - started < 0.5


def test_pattern_properties_and_additional_properties_run_in_linear_time():
    schema = {
        "type": "object",
        "patternProperties": {"^(a+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    check_schema(schema)
    started = time.monotonic()
    validate_data("t.x", schema, {"aaaa": 1})
    with pytest.raises(InvalidEventData, match="not match any of"):
        validate_data("t.x", schema, {"a" * 5000 + "!": 1})
    with pytest.raises(InvalidEventData, match="is not of type 'integer'"):
        validate_data("t.x", schema, {"aaa": "x"})
    assert time.monotonic() - started < 0.5


def test_a_pattern_re2_cannot_run_is_refused_when_saved():
    with pytest.raises(SchemaError, match="cannot be evaluated in linear time"):
        check_schema({"type": "string", "pattern": r"^(a)\1$"})
    with pytest.raises(SchemaError, match="cannot be evaluated in linear time"):
        check_schema({"patternProperties": {"(?=x)": {}}})


def test_unevaluated_properties_with_pattern_properties_is_refused():
    with pytest.raises(SchemaError, match="unevaluatedProperties"):
        check_schema({"patternProperties": {"^x": {}}, "unevaluatedProperties": False})


@override_settings(EVENTHUB={"SCHEMA_MAX_MATCH_LENGTH": 100})
def test_strings_longer_than_the_cap_are_refused_not_matched():
    schema = {"type": "string", "pattern": "^a+$"}
    validate_data("t.x", schema, "a" * 100)
    with pytest.raises(InvalidEventData, match="longer than 100 characters"):
        validate_data("t.x", schema, "a" * 101)


def test_the_regex_format_is_checked_by_re2():
    schema = {"type": "string", "format": "regex"}
    validate_data("t.x", schema, "^a+$")
    with pytest.raises(InvalidEventData, match="is not a 'regex'"):
        validate_data("t.x", schema, r"(a)\1")


@pytest.mark.django_db
def test_the_admin_refuses_a_remote_ref_on_the_event_type():
    event_type = EventType(name="order.paid", schema={"$ref": "https://example.com/order.json"})
    with pytest.raises(ValidationError) as info:
        event_type.full_clean()
    assert "only references inside this schema" in str(info.value.message_dict["schema"])
