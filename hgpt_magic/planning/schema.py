"""The JSON schema that constrains the planner's decoding: only known tasks, each with its own argument
names, and (by position) references only to earlier tasks."""

from __future__ import annotations

from typing import Any

from ..registry import Registry

#: Plans longer than this cannot be decoded under the planner's schema (see `plan_schema`).
POSITIONS = 10

#: A literal argument: printable text without `<` (so no reference), `"` or `\\` (JSON-safe under any
#: grammar compiler). Positive ranges only: llama.cpp's schema converter drops negated classes.
LITERAL = "[ !#-;=-\\[\\]-~\u00a0-\uffff]+"


def plan_schema(
    registry: Registry, *, allow_empty: bool = True, compact: bool = True, positions: int = POSITIONS
) -> dict[str, Any]:
    """A JSON schema whose every instance names a known task with exactly that task's argument names.

    `allow_empty=False` requires at least one task (a vocabulary where every request needs a tool);
    `compact=True` leaves out "id" and "dep" (ids are positions; dependencies follow from references).

    `positions=P` gives each position its own task schemas, in which the task at position p can refer
    only to tasks 0..p-1 (and, in full form, has id p): self, forward and dangling references, a small
    model's commonest invalid plans, then cannot be decoded at all; plans have at most P tasks. Grammar
    compilers (llama.cpp's) follow the `anyOf` of fixed-length tuples; `items` still describes every
    task for readers and validators.
    """
    generic = _variants(registry, compact, None)
    tasks: dict[str, Any] = {"type": "array", "items": {"anyOf": generic}}
    if not allow_empty:
        tasks["minItems"] = 1
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"tasks": tasks},
        "required": ["tasks"],
        "additionalProperties": False,
    }
    if positions:
        # One alternative per plan length, each a tuple of position schemas. There is no open-ended
        # alternative: a grammar keeps every alternative alive while it decodes, and one that admits
        # any task at any position would let the bad references back in. Plans are then at most
        # `positions` tasks long, far more than a request needs.
        schema["$defs"] = {f"task{p}": {"anyOf": _variants(registry, compact, p)} for p in range(positions)}
        tasks["maxItems"] = positions
        tasks["anyOf"] = [
            {
                "type": "array",
                "prefixItems": [{"$ref": f"#/$defs/task{p}"} for p in range(n)],
                "minItems": n,
                "maxItems": n,
            }
            for n in range(0 if allow_empty else 1, positions + 1)
        ]
    return schema


def _variants(registry: Registry, compact: bool, position: int | None) -> list[dict[str, Any]]:
    """One object schema per task type; with a `position`, references are limited to earlier tasks."""
    if position is None:
        value: dict[str, Any] = {"type": "string"}
    elif position == 0:  # the first task has nothing to refer to
        value = {"type": "string", "pattern": f"^{LITERAL}$"}
    else:  # exactly one earlier task's output, or a literal value (which cannot hold a reference)
        earlier = "|".join(str(i) for i in range(position))
        value = {"type": "string", "pattern": f"^(<GENERATED>-({earlier})|{LITERAL})$"}
    variants = []
    for spec in registry:
        properties: dict[str, Any] = {"task": {"const": spec.name}}
        if not compact:
            properties["id"] = {"type": "integer"} if position is None else {"const": position}
            dep_items = {"type": "integer"} if not position else {"enum": list(range(position))}
            properties["dep"] = {"type": "array", "items": dep_items}
            if position == 0:
                properties["dep"]["maxItems"] = 0
        properties["args"] = {
            "type": "object",
            "properties": {s.name: dict(value) for s in spec.inputs},
            "required": [s.name for s in spec.inputs if s.required],
            "additionalProperties": False,
        }
        variants.append(
            {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
        )
    return variants
