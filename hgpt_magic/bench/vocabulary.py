"""TaskBench's tool vocabulary as a `Registry`: its tools, demos and prompting settings.

Benchmark data, so it lives with the benchmark: the product's registry knows nothing of TaskBench.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..registry import Registry, Slot, TaskType, Vocabulary
from . import data_path

#: TaskBench's planner plans many requests in one session: all its demos sit in the cached prompt
#: prefix (`retrieve=None`), which measured better plans than retrieving 3 (and faster ones once warm).
#: Its descriptions run to a paragraph: the prompt keeps the first sentence.
TASKBENCH_VOCABULARY = Vocabulary(demos=data_path("demos_taskbench.json"), retrieve=None)


def from_tool_desc(tool_desc: str | Path | dict, vocabulary: Vocabulary = TASKBENCH_VOCABULARY) -> Registry:
    """A registry from TaskBench's `tool_desc.json` (`{"nodes": [{id, desc, input-type, output-type}]}`).

    Inputs are named after their type; a second input of the same type gets a suffix (`text2`).
    """
    data = tool_desc if isinstance(tool_desc, dict) else json.loads(Path(tool_desc).read_text())
    types = []
    for node in data["nodes"]:
        slots, seen = [], {}
        for media in node["input-type"]:
            seen[media] = seen.get(media, 0) + 1
            name = media if seen[media] == 1 else f"{media}{seen[media]}"
            slots.append(Slot(name, media))
        types.append(TaskType(node["id"], node["desc"], tuple(slots), tuple(node["output-type"])))
    return Registry.of(types, name="taskbench", vocabulary=vocabulary)


def taskbench_registry() -> Registry:
    """The Hugging Face tools domain shipped in `bench/data/tool_desc.json`, with its demos."""
    return from_tool_desc(data_path("tool_desc.json"))
