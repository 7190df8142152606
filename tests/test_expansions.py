"""Expansions, table-driven from SPEC §4's rules."""

from typing import Any

import pytest

from webhookd.expansions import apply, parse

ORDER: dict[str, Any] = {
    "merchant_id": "DEMO",
    "order_id": "DEMO-0001",
    "current_stage": "Shipping Department",
    "tags": ["vip", "wholesale"],
    "empty": [],
    "shipping": {"ship_to_name": "Ada", "address": {"city": "Austin", "zip": "78701"},
                 "tracking_numbers": ["1Z"]},
    "billing": {"first_name": "Ada", "card": {"last4": "4242"}},
    "items": [
        {"merchant_item_id": "A", "quantity": 1, "attributes": [{"name": "color"}],
         "pricing": {"cost": 5}},
        {"merchant_item_id": "B", "quantity": 2, "attributes": [], "pricing": {"cost": 7}},
    ],
    "summary": {"total": 12},
}
BASE = {"merchant_id": "DEMO", "order_id": "DEMO-0001", "current_stage": "Shipping Department",
        "tags": ["vip", "wholesale"], "empty": []}


@pytest.mark.parametrize(
    ("expansion", "expected"),
    [
        ("shipping", BASE | {"shipping": ORDER["shipping"]}),
        ("shipping,billing", BASE | {"shipping": ORDER["shipping"], "billing": ORDER["billing"]}),
        ("billing.card", BASE | {"billing": {"first_name": "Ada", "card": {"last4": "4242"}}}),
        ("shipping.address", BASE | {"shipping": ORDER["shipping"]}),
        ("shipping.nothing", BASE | {"shipping": {"ship_to_name": "Ada", "tracking_numbers": ["1Z"]}}),
        ("items", BASE | {"items": ORDER["items"]}),
        (
            "items.attributes",
            BASE | {"items": [
                {"merchant_item_id": "A", "quantity": 1, "attributes": [{"name": "color"}]},
                {"merchant_item_id": "B", "quantity": 2, "attributes": []},
            ]},
        ),
        ("items,items.pricing", BASE | {"items": ORDER["items"]}),  # a with a.b: a whole
        ("items.pricing,items", BASE | {"items": ORDER["items"]}),  # in either order
        ("affiliate,coupon", BASE),  # missing parts are left out, not errors
        (" shipping , ,summary ", BASE | {"shipping": ORDER["shipping"], "summary": {"total": 12}}),
        ("merchant_id", BASE),
    ],
)
def test_expansion_rules(expansion: str, expected: dict[str, Any]) -> None:
    assert apply(ORDER, parse(expansion)) == expected


def test_key_order_is_kept_and_input_untouched() -> None:
    before = repr(ORDER)
    shaped = apply(ORDER, parse("summary,shipping"))
    assert list(shaped) == [*BASE, "shipping", "summary"]
    assert repr(ORDER) == before
