"""Table tests for eventhub.events.patterns: EventBridge-style route filters. No database needed."""

import pytest

from eventhub.events.patterns import PatternError, match, validate_pattern

ENVELOPE = {
    "id": "5b7f6a3e-0000-4000-8000-000000000001",
    "source": "shop/orders",
    "type": "order.paid",
    "specversion": "1.0",
    "time": "2025-05-01T12:00:00Z",
    "subject": "order/42",
    "datacontenttype": "application/json",
    "data": {
        "amount": 150,
        "price": 19.5,
        "currency": "EUR",
        "paid": True,
        "coupon": None,
        "tags": ["vip", "gift"],
        "matrix": [[1, 2], [3]],
        "empty": [],
        "flag_as_number": 1,
        "count_as_string": "5",
        "order": {"status": "paid", "customer": {"country": "DE", "email": "Ann@Example.com"}},
        "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
    },
}

MATCH_CASES = [
    # --- match-all and plain exact values
    ("none matches all", None, True),
    ("empty matches all", {}, True),
    ("exact string", {"type": ["order.paid"]}, True),
    ("exact string mismatch", {"type": ["order.refunded"]}, False),
    ("exact is case sensitive", {"type": ["Order.Paid"]}, False),
    ("or within a list", {"type": ["order.refunded", "order.paid"]}, True),
    ("and across fields", {"type": ["order.paid"], "source": ["shop/orders"]}, True),
    ("and fails if one field fails", {"type": ["order.paid"], "source": ["crm"]}, False),
    ("exact int", {"data": {"amount": [150]}}, True),
    ("exact int equals float", {"data": {"amount": [150.0]}}, True),
    ("exact float", {"data": {"price": [19.5]}}, True),
    ("exact bool", {"data": {"paid": [True]}}, True),
    ("exact bool mismatch", {"data": {"paid": [False]}}, False),
    ("exact null", {"data": {"coupon": [None]}}, True),
    ("null does not match absent", {"data": {"missing": [None]}}, False),
    ("null does not match a value", {"data": {"currency": [None]}}, False),
    # --- type mismatches in exact values
    ("number does not match numeric string", {"data": {"count_as_string": [5]}}, False),
    ("string does not match number", {"data": {"amount": ["150"]}}, False),
    ("true does not match 1", {"data": {"flag_as_number": [True]}}, False),
    ("1 does not match true", {"data": {"paid": [1]}}, False),
    # --- nested keys
    ("nested two levels", {"data": {"order": {"status": ["paid"]}}}, True),
    ("nested three levels", {"data": {"order": {"customer": {"country": ["DE"]}}}}, True),
    ("nested mismatch", {"data": {"order": {"customer": {"country": ["FR"]}}}}, False),
    ("nested under an absent key", {"data": {"nope": {"status": ["paid"]}}}, False),
    ("nested into a scalar", {"data": {"currency": {"code": ["EUR"]}}}, False),
    ("exact value against an object", {"data": {"order": ["paid"]}}, False),
    # --- lists in the event
    ("list element matches", {"data": {"tags": ["gift"]}}, True),
    ("no list element matches", {"data": {"tags": ["plain"]}}, False),
    ("nested list flattened", {"data": {"matrix": [3]}}, True),
    ("empty list matches no value", {"data": {"empty": ["x"]}}, False),
    ("descend into list of objects", {"data": {"lines": {"sku": ["B-7"]}}}, True),
    ("list of objects no match", {"data": {"lines": {"sku": ["C-9"]}}}, False),
    ("numeric over list of objects", {"data": {"lines": {"qty": [{"numeric": [">", 1]}]}}}, True),
    # --- prefix / suffix
    ("prefix", {"source": [{"prefix": "shop/"}]}, True),
    ("prefix mismatch", {"source": [{"prefix": "crm/"}]}, False),
    ("empty prefix matches any string", {"source": [{"prefix": ""}]}, True),
    ("prefix on a number", {"data": {"amount": [{"prefix": "1"}]}}, False),
    ("prefix on list element", {"data": {"tags": [{"prefix": "gi"}]}}, True),
    ("prefix on absent key", {"data": {"missing": [{"prefix": ""}]}}, False),
    ("suffix", {"subject": [{"suffix": "/42"}]}, True),
    ("suffix mismatch", {"subject": [{"suffix": "/43"}]}, False),
    ("suffix on a bool", {"data": {"paid": [{"suffix": "e"}]}}, False),
    # --- equals-ignore-case
    ("equals-ignore-case", {"data": {"currency": [{"equals-ignore-case": "eur"}]}}, True),
    (
        "equals-ignore-case nested",
        {"data": {"order": {"customer": {"email": [{"equals-ignore-case": "ann@example.COM"}]}}}},
        True,
    ),
    ("equals-ignore-case mismatch", {"data": {"currency": [{"equals-ignore-case": "usd"}]}}, False),
    ("equals-ignore-case is not prefix", {"data": {"currency": [{"equals-ignore-case": "eu"}]}}, False),
    ("equals-ignore-case on a number", {"data": {"amount": [{"equals-ignore-case": "150"}]}}, False),
    # --- anything-but
    ("anything-but string", {"type": [{"anything-but": "order.refunded"}]}, True),
    ("anything-but excludes", {"type": [{"anything-but": "order.paid"}]}, False),
    ("anything-but list", {"type": [{"anything-but": ["a", "b"]}]}, True),
    ("anything-but list excludes", {"type": [{"anything-but": ["a", "order.paid"]}]}, False),
    ("anything-but number", {"data": {"amount": [{"anything-but": 100}]}}, True),
    ("anything-but number excludes", {"data": {"amount": [{"anything-but": [100, 150]}]}}, False),
    ("anything-but number vs string", {"data": {"count_as_string": [{"anything-but": 5}]}}, True),
    ("anything-but null", {"data": {"coupon": [{"anything-but": None}]}}, False),
    ("anything-but needs the key", {"data": {"missing": [{"anything-but": "x"}]}}, False),
    ("anything-but any list element", {"data": {"tags": [{"anything-but": "vip"}]}}, True),
    ("anything-but all list elements", {"data": {"tags": [{"anything-but": ["vip", "gift"]}]}}, False),
    ("anything-but prefix", {"source": [{"anything-but": {"prefix": "crm/"}}]}, True),
    ("anything-but prefix excludes", {"source": [{"anything-but": {"prefix": "shop/"}}]}, False),
    ("anything-but prefix on number", {"data": {"amount": [{"anything-but": {"prefix": "x"}}]}}, False),
    ("anything-but suffix", {"subject": [{"anything-but": {"suffix": "/42"}}]}, False),
    (
        "anything-but ignore case",
        {"data": {"currency": [{"anything-but": {"equals-ignore-case": ["usd", "eur"]}}]}},
        False,
    ),
    (
        "anything-but ignore case passes",
        {"data": {"currency": [{"anything-but": {"equals-ignore-case": "usd"}}]}},
        True,
    ),
    # --- numeric
    ("numeric >", {"data": {"amount": [{"numeric": [">", 100]}]}}, True),
    ("numeric > boundary", {"data": {"amount": [{"numeric": [">", 150]}]}}, False),
    ("numeric >= boundary", {"data": {"amount": [{"numeric": [">=", 150]}]}}, True),
    ("numeric <", {"data": {"amount": [{"numeric": ["<", 150]}]}}, False),
    ("numeric <=", {"data": {"amount": [{"numeric": ["<=", 150]}]}}, True),
    ("numeric =", {"data": {"amount": [{"numeric": ["=", 150]}]}}, True),
    ("numeric = float", {"data": {"price": [{"numeric": ["=", 19.5]}]}}, True),
    ("numeric range inside", {"data": {"amount": [{"numeric": [">", 0, "<=", 150]}]}}, True),
    ("numeric range outside", {"data": {"amount": [{"numeric": [">", 0, "<", 150]}]}}, False),
    ("numeric range upper first", {"data": {"price": [{"numeric": ["<", 20, ">=", 19.5]}]}}, True),
    ("numeric ignores numeric strings", {"data": {"count_as_string": [{"numeric": [">", 0]}]}}, False),
    ("numeric ignores bools", {"data": {"paid": [{"numeric": [">=", 0]}]}}, False),
    ("numeric ignores null", {"data": {"coupon": [{"numeric": ["<", 1]}]}}, False),
    ("numeric on absent key", {"data": {"missing": [{"numeric": [">", 0]}]}}, False),
    ("numeric on list element", {"data": {"matrix": [{"numeric": [">", 2]}]}}, True),
    # --- exists
    ("exists true", {"subject": [{"exists": True}]}, True),
    ("exists true on absent", {"data": {"missing": [{"exists": True}]}}, False),
    ("exists false on absent", {"data": {"missing": [{"exists": False}]}}, True),
    ("exists false on present", {"subject": [{"exists": False}]}, False),
    ("exists true on null", {"data": {"coupon": [{"exists": True}]}}, True),
    ("exists false under absent parent", {"data": {"nope": {"x": [{"exists": False}]}}}, True),
    ("exists true on list", {"data": {"tags": [{"exists": True}]}}, True),
    ("exists false on empty list", {"data": {"empty": [{"exists": False}]}}, True),
    ("exists true on object (not a leaf)", {"data": {"order": [{"exists": True}]}}, False),
    ("exists false on object (not a leaf)", {"data": {"order": [{"exists": False}]}}, True),
    ("top-level absent attribute", {"dataschema": [{"exists": False}]}, True),
    # --- combinations
    ("or of matcher kinds", {"data": {"amount": [{"numeric": ["<", 10]}, {"exists": False}, 150]}}, True),
    (
        "and of matcher kinds",
        {
            "type": [{"prefix": "order."}],
            "subject": [{"anything-but": {"prefix": "order/0"}}],
            "data": {"amount": [{"numeric": [">=", 100, "<", 1000]}], "order": {"status": ["paid"]}},
        },
        True,
    ),
    (
        "and of matcher kinds, one fails",
        {
            "type": [{"prefix": "order."}],
            "data": {"amount": [{"numeric": [">=", 100, "<", 1000]}], "order": {"status": ["open"]}},
        },
        False,
    ),
]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [case[1:] for case in MATCH_CASES],
    ids=[case[0] for case in MATCH_CASES],
)
def test_match(pattern, expected):
    validate_pattern(pattern)  # every pattern in the table must also be valid
    assert match(pattern, ENVELOPE) is expected


def test_match_on_data_that_is_not_an_object():
    envelope = {**ENVELOPE, "data": "plain text"}
    assert match({"data": {"x": [{"exists": False}]}}, envelope) is True
    assert match({"data": ["plain text"]}, envelope) is True
    assert match({"data": {"x": ["y"]}}, envelope) is False


MALFORMED_CASES = [
    ("not a dict", ["type"], "pattern must be an object"),
    ("string pattern", "order.paid", "got str"),
    ("leaf not a list", {"type": "order.paid"}, "type: expected a list of matchers"),
    ("nested leaf not a list", {"data": {"amount": 5}}, "data.amount: expected a list"),
    ("empty list", {"type": []}, "type: empty list matches nothing"),
    ("empty nested object", {"data": {}}, "data: empty object"),
    ("non-string key", {1: ["x"]}, "pattern: field names must be non-empty strings"),
    ("$or unsupported", {"$or": [{"type": ["a"]}]}, "$or: $or is not supported"),
    ("list inside leaf list", {"type": [["a"]]}, "type: ['a'] is neither a value"),
    ("nan literal", {"data": {"x": [float("nan")]}}, "data.x: nan is neither a value"),
    ("unknown matcher", {"type": [{"wildcard": "order.*"}]}, "type: unknown matcher 'wildcard'"),
    ("empty matcher object", {"type": [{}]}, "type: a matcher object needs exactly one key, got []"),
    (
        "two keys in one matcher",
        {"type": [{"prefix": "a", "suffix": "b"}]},
        "needs exactly one key, got ['prefix', 'suffix']",
    ),
    ("prefix not a string", {"type": [{"prefix": 5}]}, "type: prefix needs a string, got 5"),
    ("suffix not a string", {"type": [{"suffix": None}]}, "type: suffix needs a string, got None"),
    (
        "equals-ignore-case not a string",
        {"type": [{"equals-ignore-case": ["a"]}]},
        "equals-ignore-case needs a string",
    ),
    (
        "exists not a bool",
        {"subject": [{"exists": "true"}]},
        "subject: exists needs true or false, got 'true'",
    ),
    ("exists as int", {"subject": [{"exists": 1}]}, "exists needs true or false, got 1"),
    (
        "numeric not a list",
        {"data": {"amount": [{"numeric": ">"}]}},
        "numeric needs pairs of operator and number",
    ),
    (
        "numeric bad operand",
        {"data": {"amount": [{"numeric": [">", "x"]}]}},
        "data.amount: numeric needs pairs of operator and number, got ['>', 'x']",
    ),
    ("numeric bool operand", {"data": {"amount": [{"numeric": [">", True]}]}}, "got ['>', True]"),
    ("numeric odd length", {"data": {"amount": [{"numeric": [">", 1, "<"]}]}}, "numeric needs pairs"),
    (
        "numeric too long",
        {"data": {"amount": [{"numeric": [">", 1, "<", 5, "=", 3]}]}},
        "numeric needs pairs",
    ),
    ("numeric empty", {"data": {"amount": [{"numeric": []}]}}, "numeric needs pairs"),
    ("numeric infinite", {"data": {"amount": [{"numeric": [">", float("inf")]}]}}, "numeric needs pairs"),
    ("numeric operand first", {"data": {"amount": [{"numeric": [5, ">"]}]}}, "numeric needs pairs"),
    (
        "numeric bad operator",
        {"data": {"amount": [{"numeric": ["=>", 5]}]}},
        "data.amount: unknown numeric operator '=>'",
    ),
    (
        "numeric two lower bounds",
        {"data": {"amount": [{"numeric": [">", 1, ">=", 5]}]}},
        "needs one lower bound (> or >=) and one upper bound",
    ),
    ("numeric = in a range", {"data": {"amount": [{"numeric": ["=", 1, "<", 5]}]}}, "needs one lower bound"),
    ("numeric empty range", {"data": {"amount": [{"numeric": [">", 10, "<", 5]}]}}, "is empty"),
    ("numeric empty point range", {"data": {"amount": [{"numeric": [">", 5, "<=", 5]}]}}, "is empty"),
    ("anything-but empty list", {"type": [{"anything-but": []}]}, "anything-but needs at least one value"),
    (
        "anything-but list with dict",
        {"type": [{"anything-but": ["a", {"prefix": "b"}]}]},
        "type: anything-but values must be strings, numbers, true/false or null, got {'prefix': 'b'}",
    ),
    ("anything-but nested list", {"type": [{"anything-but": [["a"]]}]}, "anything-but values must be"),
    (
        "anything-but unknown form",
        {"type": [{"anything-but": {"numeric": [">", 1]}}]},
        "anything-but object needs exactly one of prefix, suffix, equals-ignore-case, got ['numeric']",
    ),
    (
        "anything-but two forms",
        {"type": [{"anything-but": {"prefix": "a", "suffix": "b"}}]},
        "anything-but object needs exactly one of",
    ),
    (
        "anything-but prefix not a string",
        {"type": [{"anything-but": {"prefix": ["a"]}}]},
        "type: anything-but prefix needs a string, got ['a']",
    ),
    (
        "anything-but ignore-case empty",
        {"type": [{"anything-but": {"equals-ignore-case": []}}]},
        "anything-but equals-ignore-case needs at least one string",
    ),
    (
        "anything-but ignore-case non-string",
        {"type": [{"anything-but": {"equals-ignore-case": [1]}}]},
        "anything-but equals-ignore-case needs a string, got 1",
    ),
    (
        "error deep in a valid pattern",
        {"type": ["a"], "data": {"order": {"status": [{"prefix": 1}]}}},
        "data.order.status: prefix needs a string",
    ),
]


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [case[1:] for case in MALFORMED_CASES],
    ids=[case[0] for case in MALFORMED_CASES],
)
def test_malformed_pattern(pattern, fragment):
    with pytest.raises(PatternError) as excinfo:
        validate_pattern(pattern)
    assert fragment in str(excinfo.value)


def test_pattern_error_is_a_value_error():
    # Callers (admin form clean(), API) may catch ValueError generically.
    assert issubclass(PatternError, ValueError)
