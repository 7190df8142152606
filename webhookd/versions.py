"""API versions: stepping an object down from the daemon's version (SPEC §4). Pure code.

Each ``[[api_versions]]`` entry says how to step down to its version: ``rename`` moves
a value from its path in the newer version to its path in this one, ``remove`` drops
paths, ``set_default`` sets paths that are absent. Paths start with the payload key
(``order.shipping.ship_to_name``); a path through a list applies to each element.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class VersionStep:
    version: str
    rename: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    set_default: Mapping[str, Any] = field(default_factory=dict)


def steps_down_to(steps: tuple[VersionStep, ...], target: str) -> tuple[VersionStep, ...]:
    """The steps from the daemon's version down to and including ``target`` (newest first)."""
    return tuple(step for step in steps if step.version >= target)


def _split(path: str, payload_key: str) -> list[str] | None:
    parts = path.split(".")
    return parts[1:] if parts[0] == payload_key and len(parts) > 1 else None


def _parents(node: Any, parts: list[str]) -> Iterator[dict[str, Any]]:
    """Every dict that holds the last part of ``parts``, walking through lists."""
    if isinstance(node, list):
        for element in node:
            yield from _parents(element, parts)
        return
    if not isinstance(node, dict):
        return
    if len(parts) == 1:
        yield node
        return
    if parts[0] in node:
        yield from _parents(node[parts[0]], parts[1:])


def _ensure_parent(node: dict[str, Any], parts: list[str]) -> dict[str, Any] | None:
    for name in parts[:-1]:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            return None  # a value of another type is in the way: leave it alone
        node = child
    return node


def step_down(obj: dict[str, Any], payload_key: str, step: VersionStep) -> None:
    """Apply one step to ``obj`` (the object under ``payload_key``), in place."""
    for newer, older in step.rename.items():
        old_parts, new_parts = _split(newer, payload_key), _split(older, payload_key)
        if old_parts is None or new_parts is None:
            continue
        for parent in list(_parents(obj, old_parts)):
            if old_parts[-1] not in parent:
                continue
            value = parent.pop(old_parts[-1])
            # Renames within one element of a list stay within that element.
            common = 0
            while common < min(len(old_parts), len(new_parts)) - 1 and (
                old_parts[common] == new_parts[common]
            ):
                common += 1
            if common == len(old_parts) - 1:
                target = _ensure_parent(parent, new_parts[common:])
            else:
                target = _ensure_parent(obj, new_parts)
            if target is not None:
                target[new_parts[-1]] = value
    for path in step.remove:
        parts = _split(path, payload_key)
        if parts is not None:
            for parent in _parents(obj, parts):
                parent.pop(parts[-1], None)
    for path, value in step.set_default.items():
        parts = _split(path, payload_key)
        if parts is None:
            continue
        parents = list(_parents(obj, parts))
        if not parents and len(parts) > 1:
            created = _ensure_parent(obj, parts)
            parents = [created] if created is not None else []
        for parent in parents:
            parent.setdefault(parts[-1], copy.deepcopy(value))


def downgrade(
    obj: dict[str, Any], payload_key: str, steps: tuple[VersionStep, ...]
) -> dict[str, Any]:
    """A copy of ``obj`` stepped down through ``steps`` (newest first)."""
    if not steps:
        return obj
    result = copy.deepcopy(obj)
    for step in steps:
        step_down(result, payload_key, step)
    return result
