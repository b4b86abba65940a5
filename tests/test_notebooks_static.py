"""The teaching notebooks as stored (no kernel): what an instructor hands out must agree with itself.

Conventions the notebooks follow (documented in notebooks/README.md):

- An **exercise** is a Markdown cell whose first line is a heading `Exercise N` (any level), holding its
  solution in a collapsed `<details><summary>Solution</summary> ... </details>` block. Each notebook has
  at least three, and ends with a "What you learned" section.
- A **checkable claim** is written in a Markdown cell's metadata, `"hgpt": {"claims": [...]}`; each claim
  quotes the words it backs (`"says"`, which must be in the cell's text) and says what backs them:
  `"cell": NAME` with `"shows"` (text that cell's stored outputs must contain) and/or `"hides"` (text they
  must not contain), where a code cell is named by `"hgpt": {"name": NAME}` in its metadata; or
  `"demos": N` (the planner's demo count) or `"task_types": N` (the registry's size), checked against the code.
- Stored outputs hold no absolute path, no error (except in a cell tagged `raises-exception`), and each file is at most 500 KB
  (`scripts/regenerate_notebooks.py` writes them so).
- The one install line is README's first command's install part.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_BYTES = 500 * 1024

EXERCISE = re.compile(r"\A\s*#+\s*Exercise\s+\d+", re.IGNORECASE)
SOLUTION = re.compile(r"<details>\s*<summary>\s*Solution", re.IGNORECASE)
LEARNED = re.compile(r"^#+\s*What you learned", re.IGNORECASE | re.MULTILINE)
PIP_INSTALL = re.compile(r"pip install [^`\n]*")
#: An absolute path of a machine: /home/..., /tmp/x/..., C:\Users\... (not a URL, not a MIME type).
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/<>~=-])/(?:[A-Za-z0-9_.@+-]+/)+[A-Za-z0-9_.@+-]*|\b[A-Z]:\\\\?[A-Za-z]")
DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def output_texts(cell: dict) -> list[str]:
    """Every text a cell's stored outputs show (plain, HTML, Markdown, streams, errors), media left out."""
    texts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            texts.append("".join(output["text"]) if isinstance(output["text"], list) else output["text"])
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") or mime == "application/json":
                value = "".join(value) if isinstance(value, list) else value
                texts.append(DATA_URI.sub("data:…", value if isinstance(value, str) else json.dumps(value)))
        if output.get("output_type") == "error":
            texts.append("\n".join(output.get("traceback", [])))
    return texts


MEDIA = ("image/", "audio/", "video/", "application/pdf")


def widget_texts(value, key: str = ""):
    """Every text in the stored widget state (HTML values, captured outputs), media data left out."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from widget_texts(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from widget_texts(item, key)
    elif isinstance(value, str) and not key.startswith(MEDIA):
        yield DATA_URI.sub("data:…", value)


def readme_install() -> str:
    """The install part of README's first command (`pip install ".[local]"` in `pip install ... && ...`)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)\n```", readme, re.DOTALL).group(1).strip()
    return first.split("&&")[0].strip()


def names(nb: dict) -> dict[str, dict]:
    return {c["metadata"]["hgpt"]["name"]: c for c in nb["cells"] if "name" in c.get("metadata", {}).get("hgpt", {})}


ids = [p.name for p in NOTEBOOKS]


def test_there_are_at_least_nine_notebooks():
    assert len(NOTEBOOKS) >= 9, ids


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_file_is_at_most_500_kb(path):
    assert path.stat().st_size <= MAX_BYTES, f"{path.name}: {path.stat().st_size / 1024:.0f} KB"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_stored_outputs_hold_no_absolute_path_and_no_error(path):
    nb = load(path)
    found = []
    for i, cell in enumerate(nb["cells"]):
        expected = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        for output in cell.get("outputs", []):
            assert expected or output.get("output_type") != "error", f"{path.name}[{i}] stored an error: {output.get('ename')}"
        for text in output_texts(cell):
            found += [f"[{i}] {m.group(0)}" for m in ABSOLUTE_PATH.finditer(text)]
    for text in widget_texts(nb.get("metadata", {}).get("widgets", {})):
        found += [f"widget state: {m.group(0)}" for m in ABSOLUTE_PATH.finditer(text)]
    assert not found, f"{path.name}: {found[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_three_exercises_with_solutions_and_what_you_learned(path):
    cells = [source(c) for c in load(path)["cells"] if c["cell_type"] == "markdown"]
    exercises = [text for text in cells if EXERCISE.match(text)]
    without = [text.splitlines()[0] for text in exercises if not SOLUTION.search(text)]
    assert len(exercises) >= 3, f"{path.name}: {len(exercises)} exercises"
    assert not without, f"{path.name}: no solution in {without}"
    assert any(LEARNED.search(text) for text in cells[-2:]), f"{path.name}: no 'What you learned' at the end"


def test_a_hugginggpt_cell_without_auto_exists():
    cells = [source(c) for p in NOTEBOOKS for c in load(p)["cells"] if c["cell_type"] == "code"]
    editors = [c for c in cells if c.startswith("%%hugginggpt") and "--auto" not in c.splitlines()[0]]
    assert editors, "every %%hugginggpt cell uses --auto: no notebook shows the magic's own editor"


def test_install_lines_match_readme():
    expected = readme_install()
    assert expected.startswith("pip install"), expected
    seen = {}
    for path in NOTEBOOKS:
        for cell in load(path)["cells"]:
            for line in PIP_INSTALL.findall(source(cell)):
                seen.setdefault(line.strip().rstrip(".,;"), []).append(path.name)
    assert seen, "no notebook says how to install"
    assert set(seen) == {expected}, seen
    assert "01_quickstart.ipynb" in seen[expected]


def _claims():
    for path in NOTEBOOKS:
        nb = load(path)
        for i, cell in enumerate(nb["cells"]):
            for claim in cell.get("metadata", {}).get("hgpt", {}).get("claims", []):
                yield pytest.param(path, i, claim, id=f"{path.name}[{i}] {claim.get('says', '')[:30]}")


def test_notebooks_make_checkable_claims():
    assert len(list(_claims())) >= 10


@pytest.mark.parametrize("path, index, claim", list(_claims()))
def test_claim_agrees_with_outputs_and_code(path, index, claim):
    nb = load(path)
    cell = nb["cells"][index]
    assert claim["says"] in source(cell), f"the cell no longer says {claim['says']!r}"
    checked = False
    if "cell" in claim:
        target = names(nb).get(claim["cell"])
        assert target is not None, f"no code cell named {claim['cell']!r}"
        shown = "\n".join(output_texts(target))
        assert shown, f"cell {claim['cell']!r} has no stored output: run scripts/regenerate_notebooks.py"
        if "shows" in claim:
            assert claim["shows"] in shown, f"{claim['says']!r}, but cell {claim['cell']!r} does not show {claim['shows']!r}"
        if "hides" in claim:
            assert claim["hides"] not in shown, f"{claim['says']!r}, but cell {claim['cell']!r} shows {claim['hides']!r}"
        checked = "shows" in claim or "hides" in claim
    if "demos" in claim:
        from hgpt_magic.planning import default_demos
        from hgpt_magic.registry import default_registry

        assert len(default_demos(default_registry())) == claim["demos"]
        checked = True
    if "task_types" in claim:
        from hgpt_magic.registry import default_registry

        assert len(default_registry().names) == claim["task_types"]
        checked = True
    assert checked, f"claim checks nothing: {claim}"
