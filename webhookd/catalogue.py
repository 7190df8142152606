"""The event catalogue of SPEC §2 and subscription matching.

The category of an event comes from this table, never from splitting its name:
``order_*`` must not match ``auto_order_create``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    events: tuple[str, ...]
    payload_key: str
    identity: str


CATEGORIES: tuple[Category, ...] = (
    Category(
        "order",
        (
            "order_create",
            "order_update",
            "order_delete",
            "order_stage_change",
            "order_payment_process",
            "order_payment_failed",
            "order_ship",
            "order_ship_expected",
            "order_ship_out_for_delivery",
            "order_ship_delivered",
            "order_reject",
            "order_refund",
            "order_abandon_recovery",
            "order_s3_invoice",
            "order_s3_packing_slip",
        ),
        "order",
        "order_id",
    ),
    Category(
        "auto_order",
        (
            "auto_order_create",
            "auto_order_update",
            "auto_order_cancel",
            "auto_order_decline",
            "auto_order_disable",
            "auto_order_preshipment",
            "auto_order_rebill",
        ),
        "auto_order",
        "auto_order_oid",
    ),
    Category(
        "chargeback",
        ("chargeback_create", "chargeback_update", "chargeback_delete"),
        "chargeback",
        "chargeback_dispute_oid",
    ),
    Category(
        "checkout",
        ("checkout_cart_abandon", "checkout_cart_send_return_email"),
        "cart",
        "cart_id",
    ),
    Category(
        "customer",
        ("customer_create", "customer_update", "customer_delete"),
        "customer",
        "customer_profile_oid",
    ),
    Category("item", ("item_create", "item_update", "item_delete"), "item", "merchant_item_id"),
    Category("fulfillment", ("fulfillment_hold", "fulfillment_transmit"), "order", "order_id"),
)


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    category: Category

    @property
    def payload_key(self) -> str:
        return self.category.payload_key

    @property
    def identity(self) -> str:
        return self.category.identity


EVENTS: dict[str, EventType] = {
    name: EventType(name, category) for category in CATEGORIES for name in category.events
}
CATEGORY_BY_NAME: dict[str, Category] = {category.name: category for category in CATEGORIES}
ALL_EVENTS: frozenset[str] = frozenset(EVENTS)


class UnknownEventError(ValueError):
    """A subscription names an event or category that is not in the catalogue."""


def expand_subscription(patterns: Iterable[str]) -> frozenset[str]:
    """The event names a list of subscription patterns selects.

    Each pattern is an event name, ``<category>_*`` or ``*``. Raises
    :class:`UnknownEventError` naming the first pattern that selects nothing.
    """
    selected: set[str] = set()
    for pattern in patterns:
        if pattern == "*":
            selected |= ALL_EVENTS
        elif pattern.endswith("_*"):
            category = CATEGORY_BY_NAME.get(pattern[:-2])
            if category is None:
                raise UnknownEventError(
                    f"unknown event category {pattern!r} (categories: "
                    f"{', '.join(c.name + '_*' for c in CATEGORIES)})"
                )
            selected.update(category.events)
        elif pattern in EVENTS:
            selected.add(pattern)
        else:
            raise UnknownEventError(f"unknown event {pattern!r}")
    return frozenset(selected)


def payload_keys(events: Iterable[str]) -> frozenset[str]:
    """The payload keys that the given event names travel under."""
    return frozenset(EVENTS[name].payload_key for name in events)
