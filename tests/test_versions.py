from typing import Any

from webhookd.versions import VersionStep, downgrade, steps_down_to

ORDER: dict[str, Any] = {
    "order_id": "DEMO-1",
    "utms": [{"source": "mail"}],
    "shipping": {"ship_to_name": "Ada", "city": "Austin"},
    "items": [{"merchant_item_id": "A", "cost": 5}, {"merchant_item_id": "B", "cost": 7}],
}
STEPS = (
    VersionStep(
        "2016-10-01",
        rename={"order.shipping.ship_to_name": "order.shipping.name"},
        remove=("order.utms",),
        set_default={"order.language_iso_code": "ENG"},
    ),
    VersionStep(
        "2016-01-01",
        rename={"order.items.cost": "order.items.unit_cost", "order.order_id": "order.id"},
        set_default={"order.items.taxable": True, "order.shipping.name": "unknown"},
    ),
)


def test_steps_from_the_daemon_version_down_to_and_including_the_pin() -> None:
    assert steps_down_to(STEPS, "2016-10-01") == STEPS[:1]
    assert steps_down_to(STEPS, "2016-01-01") == STEPS
    assert steps_down_to(STEPS, "2017-03-01") == ()


def test_one_step() -> None:
    assert downgrade(ORDER, "order", STEPS[:1]) == {
        "order_id": "DEMO-1",
        "shipping": {"city": "Austin", "name": "Ada"},
        "items": ORDER["items"],
        "language_iso_code": "ENG",
    }


def test_two_steps_and_paths_through_lists() -> None:
    old = downgrade(ORDER, "order", STEPS)
    assert old["id"] == "DEMO-1" and "order_id" not in old
    assert old["items"] == [
        {"merchant_item_id": "A", "unit_cost": 5, "taxable": True},
        {"merchant_item_id": "B", "unit_cost": 7, "taxable": True},
    ]
    assert old["shipping"]["name"] == "Ada"  # set only when absent
    assert ORDER["shipping"] == {"ship_to_name": "Ada", "city": "Austin"}  # input untouched


def test_other_payload_keys_and_missing_paths_are_left_alone() -> None:
    item = {"merchant_item_id": "A"}
    assert downgrade(item, "item", STEPS) == item
    assert downgrade({"order_id": "X"}, "order", STEPS[:1]) == {
        "order_id": "X",
        "language_iso_code": "ENG",
    }
