"""Expansions: which parts of an object an endpoint receives (SPEC §4). Pure code.

With expansions for a key the object keeps its base fields (top-level values that are
neither objects nor lists of objects) plus each listed part whole; ``a.b`` keeps, inside
``a``, its base fields and ``b`` whole; a path through a list applies to each element;
``a`` with ``a.b`` keeps ``a`` whole; missing parts are left out.
"""

from __future__ import annotations

from typing import Any

# A tree of the listed paths: a name maps to WHOLE (keep the part whole) or to the
# tree of its own listed parts.
WHOLE: dict[str, Any] = {}
Tree = dict[str, Any]


def parse(expansion: str) -> Tree:
    """``"shipping,items.attributes"`` into its tree; blanks and repeats are harmless."""
    tree: Tree = {}
    paths = sorted(
        (tuple(part.strip() for part in path.split(".")) for path in expansion.split(",")),
        key=len,
    )
    for path in paths:
        if not all(path):
            continue
        node = tree
        for depth, name in enumerate(path):
            child = node.get(name)
            if child is WHOLE:
                break  # "a" already keeps a whole, "a.b" adds nothing
            if depth == len(path) - 1:
                node[name] = WHOLE
            else:
                node = node.setdefault(name, {})
    return tree


def is_base(value: Any) -> bool:
    if isinstance(value, dict):
        return False
    if isinstance(value, list):
        return not any(isinstance(element, dict) for element in value)
    return True


def apply(obj: dict[str, Any], tree: Tree) -> dict[str, Any]:
    """The object as the endpoint receives it, keys in their original order."""
    shaped: dict[str, Any] = {}
    for key, value in obj.items():
        sub = tree.get(key)
        if sub is WHOLE:
            shaped[key] = value
        elif sub is not None and isinstance(value, dict):
            shaped[key] = apply(value, sub)
        elif sub is not None and isinstance(value, list):
            shaped[key] = [apply(e, sub) if isinstance(e, dict) else e for e in value]
        elif is_base(value):
            shaped[key] = value
    return shaped
