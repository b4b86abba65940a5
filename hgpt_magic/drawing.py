"""Boxes drawn on an image: one drawing for every detector, OCR engine and display.

Experts (local faces, remote object detection) and the notebook display all draw detections the
same way, so a box looks the same whichever backend found it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

RED = (230, 30, 30)
# Distinct colours for segments and several classes of box.
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def box_corners(box: Any) -> tuple[float, float, float, float] | None:
    """`(x0, y0, x1, y1)` from the box forms backends use, or None.

    `{"xmin", "ymin", "xmax", "ymax"}` (Hugging Face pipelines), `[x0, y0, x1, y1]`, or corner
    points `[[x, y], ...]` (OCR).
    """
    try:
        if isinstance(box, dict):
            return tuple(float(box[k]) for k in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[return-value]
        if isinstance(box, list | tuple) and len(box) == 4 and all(isinstance(v, int | float) for v in box):
            return tuple(float(v) for v in box)  # type: ignore[return-value]
        if isinstance(box, list | tuple) and box and all(isinstance(p, list | tuple) and len(p) == 2 for p in box):
            xs, ys = [p[0] for p in box], [p[1] for p in box]
            return (min(xs), min(ys), max(xs), max(ys))
    except (KeyError, TypeError, ValueError):
        return None
    return None


def box_label(item: dict[str, Any]) -> str:
    """`face 0.98`: the item's label (or OCR text) and its score."""
    label = str(item.get("label") or item.get("text") or "")
    if isinstance(item.get("score"), int | float):
        label += f" {item['score']:.2f}"
    return label.strip()


def draw_boxes(image: Any, items: Sequence[dict[str, Any]]):
    """A copy of the PIL image with each item's `box` drawn and labelled (label kept inside the image)."""
    from PIL import ImageDraw, ImageFont

    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    draw = ImageDraw.Draw(out)
    line = max(2, round(max(out.size) / 200))
    font = ImageFont.load_default(size=max(12, line * 6))
    for item in items:
        corners = box_corners(item.get("box"))
        if corners is None:
            continue
        draw.rectangle(corners, outline=RED, width=line)
        label = box_label(item)
        if label:
            anchor = (corners[0], max(font.size + line, corners[1]))
            draw.rectangle(draw.textbbox(anchor, label, font=font, anchor="lb"), fill=RED)
            draw.text(anchor, label, fill="white", font=font, anchor="lb")
    return out
