"""The task graph as a small inline SVG: one box per task, an arrow per `<GENERATED>-N` reference.

Layout is layered: a task's column is the length of the longest dependency path that leads to it, so
tasks that can run at the same time stand in the same column. It draws any draft plan, broken ones
included: an edge that closes a cycle is drawn red, a reference to a missing task is left out (the
editor's validation names it). Pure string building, no JavaScript: it shows in every front end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from ..types import Task

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 168, 42, 46, 12, 8

#: Fill colour of a task box by its state.
STATUS_FILL = {
    "queued": "#f2f4f8",
    "pending": "#f2f4f8",
    "changed": "#fff7d6",
    "running": "#cfe3ff",
    "done": "#d6f5d6",
    "failed": "#f8d0d0",
    "refused": "#f8d0d0",  # names a file or URL the user did not give (the editor's "Allow")
    "skipped": "#f3e2c0",
    "cancelled": "#f3e2c0",
}


def edges(tasks: Sequence[Task]) -> list[tuple[int, int]]:
    """(producer id, consumer id) for every reference to an existing task (`Task.derived_dep`)."""
    ids = {t.id for t in tasks}
    return [(ref, t.id) for t in tasks for ref in t.derived_dep(ids)]


def layers(tasks: Sequence[Task]) -> dict[int, int]:
    """Column of each task: 0 without dependencies, else one more than its deepest dependency.

    Relaxation stops after len(tasks) rounds, so a cycle gives finite (if arbitrary) columns.
    """
    layer = {t.id: 0 for t in tasks}
    links = edges(tasks)
    for _ in range(len(tasks)):
        changed = False
        for src, dst in links:
            if src == dst:
                continue  # a task using its own output: drawn as a red loop, no column of its own
            if layer[dst] < layer[src] + 1 and layer[src] + 1 < len(tasks):
                layer[dst] = layer[src] + 1
                changed = True
        if not changed:
            break
    return layer


def plan_svg(tasks: Sequence[Task], statuses: Mapping[int, str] | None = None) -> str:
    """An SVG drawing of `tasks`; `statuses` (task id → state name) colours the boxes."""
    if not tasks:
        return '<div style="color:#666;font-style:italic">no tasks: the LLM answers directly</div>'
    statuses = statuses or {}
    layer = layers(tasks)
    columns: dict[int, list[int]] = {}
    for task in tasks:
        columns.setdefault(layer[task.id], []).append(task.id)
    pos = {}
    for col, ids in columns.items():
        for row, task_id in enumerate(ids):
            pos[task_id] = (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(columns) + 1) * BOX_W + max(columns) * GAP_X
    height = PAD * 2 + max(len(ids) for ids in columns.values()) * (BOX_H + GAP_Y) - GAP_Y

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="font-family:sans-serif;font-size:12px">'
    ]
    for src, dst in edges(tasks):
        parts.append(_arrow(pos[src], pos[dst], backwards=layer[src] >= layer[dst]))
    by_id = {t.id: t for t in tasks}
    for task_id, (x, y) in pos.items():
        state = statuses.get(task_id, "queued")
        fill = STATUS_FILL.get(state, STATUS_FILL["queued"])
        name = by_id[task_id].task
        name = name if len(name) <= 22 else name[:21] + "…"
        parts.append(
            f'<g><title>task {task_id}: {escape(by_id[task_id].task)} ({escape(state)})</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" stroke="#8891a0"/>'
            f'<text x="{x + 8}" y="{y + 17}" font-weight="bold">#{task_id} {escape(name)}</text>'
            f'<text x="{x + 8}" y="{y + 33}" fill="#555">{escape(state)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _arrow(src: tuple[int, int], dst: tuple[int, int], backwards: bool) -> str:
    """A line from the right of `src` to the left of `dst` with a drawn head (no marker ids to clash)."""
    x1, y1 = src[0] + BOX_W, src[1] + BOX_H // 2
    x2, y2 = dst[0], dst[1] + BOX_H // 2
    colour = "#d33" if backwards else "#667"
    if backwards:  # a cycle: loop around above the boxes so the edge stays visible
        top = min(src[1], dst[1]) + 4
        path = f"M{x1},{y1} C{x1 + 30},{top - 40} {x2 - 30},{top - 40} {x2},{y2}"
        line = f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="4 3"/>'
    else:
        line = f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-width="1.5"/>'
    head = f'<polygon points="{x2},{y2} {x2 - 8},{y2 - 4} {x2 - 8},{y2 + 4}" fill="{colour}"/>'
    return line + head
