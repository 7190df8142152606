import pytest

from webhookd.catalogue import (
    ALL_EVENTS,
    CATEGORIES,
    EVENTS,
    UnknownEventError,
    expand_subscription,
    payload_keys,
)


def test_table_of_spec_section_2() -> None:
    assert len(ALL_EVENTS) == 15 + 7 + 3 + 2 + 3 + 3 + 2
    assert EVENTS["auto_order_rebill"].payload_key == "auto_order"
    assert EVENTS["auto_order_rebill"].identity == "auto_order_oid"
    assert EVENTS["checkout_cart_abandon"].payload_key == "cart"
    assert EVENTS["checkout_cart_abandon"].identity == "cart_id"
    assert EVENTS["fulfillment_hold"].payload_key == "order"
    assert EVENTS["chargeback_update"].identity == "chargeback_dispute_oid"
    assert EVENTS["customer_delete"].identity == "customer_profile_oid"
    assert EVENTS["item_update"].identity == "merchant_item_id"
    assert sum(len(c.events) for c in CATEGORIES) == len(ALL_EVENTS)


def test_category_wildcard_comes_from_the_table_not_the_name() -> None:
    orders = expand_subscription(["order_*"])
    assert "order_create" in orders
    assert "auto_order_create" not in orders
    assert len(orders) == 15
    assert expand_subscription(["auto_order_*"]) == frozenset(CATEGORIES[1].events)
    # checkout's events don't start with "checkout_cart" by accident of naming rules
    assert expand_subscription(["checkout_*"]) == {
        "checkout_cart_abandon",
        "checkout_cart_send_return_email",
    }


def test_star_and_names_combine() -> None:
    assert expand_subscription(["*"]) == ALL_EVENTS
    assert expand_subscription(["item_update", "chargeback_*"]) == {
        "item_update",
        "chargeback_create",
        "chargeback_update",
        "chargeback_delete",
    }


@pytest.mark.parametrize("bad", ["order_created", "orders_*", "cart_*", "", "order*"])
def test_unknown_names_are_named(bad: str) -> None:
    with pytest.raises(UnknownEventError, match=repr(bad).replace("*", r"\*")):
        expand_subscription(["order_create", bad])


def test_payload_keys() -> None:
    assert payload_keys(expand_subscription(["item_*"])) == {"item"}
    assert payload_keys(["fulfillment_transmit", "order_ship"]) == {"order"}
