"""Filters, table-driven from the Event Ruler / EventBridge documentation's examples."""

from typing import Any

import pytest

from webhookd.filters import PatternError, matches, validate

# The EventBridge documentation's sample event, reduced to its detail.
EVENT: dict[str, Any] = {
    "source": "aws.ec2",
    "detail-type": "EC2 Instance State-change Notification",
    "state": "running",
    "instance-id": "i-1234567890abcdef0",
    "c-count": 5,
    "d-count": 3,
    "x-limit": 301.8,
    "source-ip": "10.0.0.123",
    "status": "Active",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-1", "arn:aws:ec2:sg-2"],
    "location": {"region": "us-east-1", "zone": "us-east-1a"},
    "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 4}],
    "flag": True,
    "nothing": None,
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # Exact values; any of a list; arrays in the event match if any element does.
        ({"state": ["running"]}, True),
        ({"state": ["stopped", "running"]}, True),
        ({"state": ["stopped"]}, False),
        ({"resources": ["arn:aws:ec2:sg-2"]}, True),
        ({"c-count": [5]}, True),
        ({"c-count": [5.0]}, True),
        ({"c-count": ["5"]}, False),
        ({"flag": [True]}, True),
        ({"flag": [1]}, False),
        ({"nothing": [None]}, True),
        # Nested fields and fields of objects inside arrays.
        ({"location": {"region": ["us-east-1"]}}, True),
        ({"location": {"region": ["eu-west-1"]}}, False),
        ({"items": {"sku": ["B"]}}, True),
        ({"items": {"sku": ["C"]}}, False),
        # All fields must match.
        ({"state": ["running"], "location": {"zone": ["us-east-1b"]}}, False),
        # prefix / suffix / equals-ignore-case
        ({"instance-id": [{"prefix": "i-123"}]}, True),
        ({"instance-id": [{"prefix": "j-"}]}, False),
        ({"source-ip": [{"suffix": ".123"}]}, True),
        ({"status": [{"equals-ignore-case": "active"}]}, True),
        ({"status": [{"equals-ignore-case": "inactive"}]}, False),
        ({"c-count": [{"prefix": "5"}]}, False),  # prefix is for strings
        # anything-but
        ({"state": [{"anything-but": "initializing"}]}, True),
        ({"state": [{"anything-but": ["stopped", "running"]}]}, False),
        ({"c-count": [{"anything-but": [1, 2, 3]}]}, True),
        ({"state": [{"anything-but": {"prefix": "run"}}]}, False),
        ({"state": [{"anything-but": {"suffix": "ped"}}]}, True),
        ({"missing": [{"anything-but": "x"}]}, False),
        # numeric
        ({"c-count": [{"numeric": [">", 0, "<=", 5]}]}, True),
        ({"d-count": [{"numeric": ["<", 10]}]}, True),
        ({"x-limit": [{"numeric": ["=", 301.8]}]}, True),
        ({"x-limit": [{"numeric": [">", 302]}]}, False),
        ({"items": {"qty": [{"numeric": [">=", 4]}]}}, True),
        ({"state": [{"numeric": [">", 0]}]}, False),
        # exists
        ({"state": [{"exists": True}]}, True),
        ({"missing": [{"exists": False}]}, True),
        ({"state": [{"exists": False}]}, False),
        ({"location": {"zone": [{"exists": True}]}}, True),
        # $or
        ({"$or": [{"c-count": [{"numeric": [">", 10]}]}, {"d-count": [3]}]}, True),
        ({"$or": [{"c-count": [9]}, {"d-count": [9]}]}, False),
        ({"state": ["running"], "$or": [{"flag": [False]}, {"location": {"region": ["us-east-1"]}}]}, True),
        ({"location": {"$or": [{"region": ["x"]}, {"zone": ["us-east-1a"]}]}}, True),
    ],
)
def test_event_ruler_examples(pattern: dict[str, Any], expected: bool) -> None:
    validate(pattern)
    assert matches(pattern, EVENT) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({}, "non-empty table"),
        ({"state": "running"}, "filter.state: expected a list"),
        ({"state": []}, "filter.state: expected a list"),
        ({"state": [{"prefx": "r"}]}, "filter.state: unknown operator 'prefx'"),
        ({"state": [{"prefix": 1}]}, "prefix takes a string"),
        ({"n": [{"numeric": [">"]}]}, "numeric takes"),
        ({"n": [{"numeric": ["~", 1]}]}, "is not a comparison"),
        ({"n": [{"exists": "yes"}]}, "exists takes true or false"),
        ({"$or": [{"a": [1]}]}, "at least two patterns"),
        ({"a": {"b": [{"prefix": "x", "suffix": "y"}]}}, "filter.a.b: a matcher is"),
    ],
)
def test_invalid_patterns_say_where(pattern: Any, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        validate(pattern)
