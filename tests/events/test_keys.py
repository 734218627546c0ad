"""Ordering key templates: rendered from the envelope; malformed ones refused with a clear message."""

import pytest

from eventhub.events import KeyTemplateError, check_key_template, render_key

ENVELOPE = {
    "id": "e1",
    "type": "order.paid",
    "subject": "order/42",
    "data": {"order_id": 42, "customer": {"id": "c-7"}, "lines": [{"sku": "A"}], "flag": True, "none": None},
}


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("{subject}", "order/42"),
        ("{data.order_id}", "42"),
        ("customer/{data.customer.id}", "customer/c-7"),
        ("{type}:{data.order_id}", "order.paid:42"),
        ("{data.lines.0.sku}", "A"),
        ("{data.flag}", "true"),
        ("{{literal}}-{subject}", "{literal}-order/42"),
    ],
)
def test_a_template_renders_the_key(template, key):
    check_key_template(template)
    assert render_key(template, ENVELOPE) == key


@pytest.mark.parametrize("template", ["{data.missing}", "{data.none}", "{data.customer}", "{data.lines}"])
def test_a_missing_null_or_structured_value_leaves_the_event_unordered(template):
    assert render_key(template, ENVELOPE) is None


def test_no_template_means_no_ordering():
    check_key_template("")
    assert render_key("", ENVELOPE) is None


def test_a_long_key_is_stored_as_its_hash_and_stays_distinct():
    one = render_key("{data.text}", {"data": {"text": "x" * 300}})
    other = render_key("{data.text}", {"data": {"text": "x" * 299 + "y"}})
    assert one.startswith("sha256:") and len(one) == 71 and one != other


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{subject", "unmatched '{'"),
        ("subject}", "unmatched '}'"),
        ("{}", "non-empty"),
        ("{data..id}", "empty or padded part"),
        ("{order_id}", "must start with an envelope attribute"),
        ("order/42", "without a {placeholder}"),
    ],
)
def test_a_malformed_template_is_refused(template, message):
    with pytest.raises(KeyTemplateError, match=message):
        check_key_template(template)
