"""The plan editor headless (ipywidgets without a front end), the renderings and the task graph."""

from __future__ import annotations

import html
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

from hgpt_magic.catalog import Catalog
from hgpt_magic.draft import Refusal, TypedValues, check_draft
from hgpt_magic.pipeline import HuggingGPT
from hgpt_magic.registry import Registry, default_registry
from hgpt_magic.resources import Allowed
from hgpt_magic.testing import ScriptedLLM, TimedExperts
from hgpt_magic.types import Artifact, Attempt, Choice, Plan, Task, TaskResult
from hgpt_magic.widgets import render
from hgpt_magic.widgets.editor import PlanEditor
from hgpt_magic.widgets.graph import layers, plan_svg

#: HuggingGPT's task types without shipped demos, so planning needs no demo retrieval (fast tests).
REGISTRY = Registry.of(list(default_registry()), name="tests")
SERVED = ["summarization", "translation", "image-to-text", "text-to-speech"]
PLAN = {
    "tasks": [
        {"task": "summarization", "id": 0, "dep": [], "args": {"text": "a long story"}},
        {"task": "translation", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0", "language": "French"}},
    ]
}
PICKS = json.dumps({"0": {"id": "sleep-0", "reason": "fastest"}, "1": {"id": "sleep-0", "reason": "fastest"}})


@pytest.fixture(autouse=True)
def shell():
    """Output widgets format what they show with the running shell's display formatter."""
    return InteractiveShell.instance()


def make_editor(tmp_path, *answers: str, plan=PLAN, models=("sleep-0", "sleep-0.05"), picks=PICKS,
                request="Summarize a long story and translate it", insists=False):
    """A planned Run (scripted plan and model picks) in a fresh editor, with timed experts.

    `insists`: the LLM sends the same plan again when the planner re-asks (a plan naming a file the
    user did not give is sent back once, then handed to the editor with its refusals)."""
    experts = TimedExperts(SERVED, models=models)
    llm = ScriptedLLM([json.dumps(plan)] * (2 if insists else 1) + [picks, *answers])
    # select_policy "always": the LLM picks the models (and says why) though the request names no difference
    pipeline = HuggingGPT(llm=llm, experts=[experts], registry=REGISTRY, catalog=Catalog([]), out_dir=tmp_path / "runs",
                          select_policy="always")
    run = pipeline.run(request, plan_only=True)
    return PlanEditor(pipeline, run), experts, pipeline


def states(editor: PlanEditor) -> dict[int, str]:
    return {t.id: editor.state(t.id) for t in editor.tasks}


def shown_text(output) -> str:
    return "\n".join(str(o["data"].get("text/plain", "")) for o in output.outputs)


# --------------------------------------------------------------------------- the editor


def test_the_editor_shows_the_plan_the_llm_picks_and_their_reasons(tmp_path):
    editor, _, _ = make_editor(tmp_path)
    row = editor.row(1)
    assert row.type.value == "translation" and row.type.options == tuple(REGISTRY.names)
    assert row.args["text"].source.value == "<GENERATED>-0"
    assert row.args["text"].source.label == "output of task 0 (summarization)"
    assert row.args["language"].text.value == "French"
    assert row.model.value == "sleep-0"
    assert row.model.options == (("sleep-0 · 1,000 downloads", "sleep-0"), ("sleep-0.05 · 999 downloads", "sleep-0.05"))
    assert "fastest" in row.reason.value and "timed" in row.backend.value
    assert editor.errors == [] and not editor.run_button.disabled
    assert editor.stop_button.layout.display == "none"
    assert "#0 summarization" in editor.graph.value and "#1 translation" in editor.graph.value


def test_changing_a_model_and_an_argument_updates_the_draft(tmp_path):
    editor, _, _ = make_editor(tmp_path)
    editor.row(0).model.value = "sleep-0.05"
    choice = editor.selection()[0]
    assert (choice.model, choice.backend) == ("sleep-0.05", "timed")
    assert choice.reason == "chosen in the editor (selection had picked sleep-0: fastest)"
    assert "chosen in the editor" in editor.row(0).reason.value
    editor.row(1).args["language"].text.value = "German"
    assert editor.task(1).args == {"text": "<GENERATED>-0", "language": "German"}
    assert json.loads(editor.export())[1]["args"]["language"] == "German"


def test_adding_and_removing_tasks_with_live_validation_and_graph(tmp_path):
    editor, _, _ = make_editor(tmp_path)
    editor.add_type.value = "text-to-speech"
    editor.add_button.click()
    assert [t.id for t in editor.tasks] == [0, 1, 2]
    assert editor.run_button.disabled and editor.step_button.disabled
    assert editor.errors == ["task 2 (text-to-speech) is missing its text argument 'text'"]
    assert "missing its text argument" in editor.validation.value and "missing" in editor.run_button.tooltip

    editor.row(2).args["text"].source.value = "<GENERATED>-1"
    assert editor.errors == [] and not editor.run_button.disabled
    assert editor.task(2).dep == [1]
    assert "#2 text-to-speech" in editor.graph.value and "ready to run" in editor.validation.value

    editor.row(2).remove.click()
    assert [t.id for t in editor.tasks] == [0, 1] and 2 not in editor.rows
    assert "#2" not in editor.graph.value


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda e: setattr(e.row(0).args["text"].source, "value", "<GENERATED>-1"), "depend on each other in a cycle"),
        (lambda e: e.row(0).remove.click(), "task 1 uses <GENERATED>-0, but there is no task 0"),
        (lambda e: setattr(e.row(1).type, "value", "image-to-text"), "task 1 (image-to-text) is missing its image"),
        (lambda e: setattr(e.row(1).type, "value", "depth-estimation"), "no available backend serves depth-estimation"),
        (lambda e: e.row(1).args["text"].text.__setattr__("value", "x"), None),
    ],
    ids=["cycle", "dangling", "type-change", "no-backend", "valid"],
)
def test_an_invalid_plan_disables_run_and_says_why(tmp_path, edit, reason):
    editor, _, _ = make_editor(tmp_path)
    edit(editor)
    if reason is None:
        assert editor.errors == [] and not editor.run_button.disabled
        return
    assert editor.run_button.disabled and editor.step_button.disabled
    assert any(reason in e for e in editor.errors), editor.errors
    assert html.escape(reason) in editor.validation.value


def test_a_type_mismatch_and_a_missing_file_are_reported(tmp_path):
    editor, _, _ = make_editor(tmp_path)
    editor.add_type.value = "image-to-text"
    editor.add_button.click()
    editor.row(2).args["image"].source.value = "<GENERATED>-0"
    assert "task 2 (image-to-text) wants image for 'image', but task 0 (summarization) produces text" in editor.errors
    editor.row(2).args["image"].source.value = ""
    editor.row(2).args["image"].text.value = "nowhere.png"
    assert editor.errors == ["task 2 (image-to-text): image file not found: nowhere.png"]
    picture = tmp_path / "here.png"
    Image.new("RGB", (4, 4)).save(picture)
    editor.row(2).args["image"].text.value = str(picture)
    assert editor.errors == []


def test_a_reference_to_the_wrong_type_is_an_error_with_a_suggestion_never_a_silent_rewire(tmp_path):
    """Issue 11: the user's edit is shown as written; row, plan that runs and Export agree."""
    plan = {"tasks": [
        {"task": "summarization", "id": 0, "dep": [], "args": {"text": "a long story"}},
        {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
        {"task": "translation", "id": 2, "dep": [0], "args": {"text": "<GENERATED>-0", "language": "French"}},
    ]}
    editor, _, _ = make_editor(tmp_path, plan=plan)
    assert editor.errors == []
    editor.row(2).args["text"].source.value = "<GENERATED>-1"  # translate the speech (audio): wrong type

    wrong = "task 2 (translation) wants text for 'text', but task 1 (text-to-speech) produces audio"
    assert wrong in editor.errors and editor.plan is None and editor.run_button.disabled
    assert editor.row(2).args["text"].source.value == "<GENERATED>-1"  # the row keeps the user's edit
    assert editor.task(2).args["text"] == "<GENERATED>-1" and editor.task(2).dep == [1]
    assert json.loads(editor.export())[2]["args"]["text"] == "<GENERATED>-1"  # Export says what the row says
    assert editor.suggestions == ["task 2: 'text' took <GENERATED>-1, which cannot give text; set to <GENERATED>-0 (summarization)"]
    assert "Suggested" in editor.validation.value and editor.apply_button.layout.display is None

    editor.apply_button.click()  # the user takes the suggestion: now all three say -0
    assert editor.errors == [] and editor.suggestions == [] and not editor.run_button.disabled
    assert editor.row(2).args["text"].source.value == "<GENERATED>-0"
    assert editor.plan[2].args["text"] == "<GENERATED>-0" and editor.plan[2].dep == [0]
    assert json.loads(editor.export())[2]["args"]["text"] == "<GENERATED>-0"
    assert editor.apply_button.layout.display == "none"


def test_run_executes_in_the_background_shows_results_and_the_answer(tmp_path):
    editor, experts, pipeline = make_editor(tmp_path, "Here is the French summary.")
    editor.run_button.click()
    assert editor.run_button.disabled  # busy at once: a second click cannot start a second run
    assert editor.wait(10)
    run = editor.run
    assert run.status == "done" and run.answer.startswith("Here is the French summary.")
    assert states(editor) == {0: "done", 1: "done"}
    assert "summarization(text=a long story)" in shown_text(editor.row(0).output)
    assert "translation(language=French" in shown_text(editor.row(1).output)
    assert editor.answer.outputs[0]["data"]["text/markdown"].startswith("Here is the French summary.")
    assert "done" in editor.row(1).status.value and "Done in" in editor.message.value
    assert not editor.run_button.disabled and editor.stop_button.layout.display == "none"
    assert len(experts.calls) == 2 and pipeline.history[-1].request == run.request


def test_rerun_after_an_edit_reuses_unchanged_tasks(tmp_path):
    editor, experts, pipeline = make_editor(tmp_path, "first answer", "second answer")
    editor.run_button.click()
    editor.wait(10)
    editor.row(1).model.value = "sleep-0.05"
    assert states(editor) == {0: "done", 1: "changed"}
    assert "changed" in editor.row(1).status.value
    editor.run_button.click()
    editor.wait(10)
    run = editor.run
    assert run.results[0].reused and not run.results[1].reused
    assert run.results[1].model == "sleep-0.05" and run.answer.startswith("second answer")
    assert [call[1] for call in experts.calls] == ["sleep-0", "sleep-0", "sleep-0.05"]
    assert "1 reused" in editor.message.value
    assert len(pipeline.history) == 1  # the same request run again replaces its turn

    editor.row(0).args["text"].text.value = "another story"  # an upstream edit: both run again
    assert states(editor) == {0: "changed", 1: "changed"}


def test_step_runs_the_ready_tasks_then_the_rest_stays_editable(tmp_path):
    editor, experts, _ = make_editor(tmp_path, "answer")
    assert editor.ready_ids() == {0}
    editor.step_button.click()
    editor.wait(10)
    assert states(editor) == {0: "done", 1: "queued"}
    assert "summarization(text=a long story)" in shown_text(editor.row(0).output)
    assert editor.row(1).output.outputs == ()
    assert "Next: task 1" in editor.message.value and editor.run.answer is None
    assert not editor.row(1).model.disabled and not editor.step_button.disabled

    editor.row(1).args["language"].text.value = "German"  # change what is left, then step again
    editor.step_button.click()
    editor.wait(10)
    assert states(editor) == {0: "done", 1: "done"}
    assert experts.calls[-1][2]["language"] == "German" and len(experts.calls) == 2
    assert editor.step_button.disabled and "Run writes the answer" in editor.message.value

    editor.run_button.click()  # everything is reused; the LLM writes the answer
    editor.wait(10)
    assert len(experts.calls) == 2 and all(r.reused for r in editor.run.results.values())
    assert editor.run.answer.startswith("answer")


def test_stop_cancels_what_has_not_started_and_keeps_finished_results(tmp_path):
    editor, experts, _ = make_editor(tmp_path, "partial answer", models=("sleep-0.4",))
    editor.run_button.click()
    deadline = time.monotonic() + 5
    while editor.state(0) != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert editor.stop_button.layout.display is None and not editor.stop_button.disabled
    editor.stop_button.click()
    assert editor.stop_button.disabled and "Stopping" in editor.message.value
    assert editor.wait(10)
    assert states(editor) == {0: "done", 1: "cancelled"}
    assert editor.run.status == "interrupted" and len(experts.calls) == 1
    assert "Stopped" in editor.message.value and editor.stop_button.layout.display == "none"


def test_replan_replaces_the_plan_from_the_edited_request(tmp_path):
    editor, _, _ = make_editor(tmp_path)
    new_plan = {"tasks": [{"task": "summarization", "id": 0, "dep": [], "args": {"text": "short"}}]}
    editor.pipeline.llm.replies[:0] = [json.dumps(new_plan), json.dumps({"0": {"id": "sleep-0.05", "reason": "r"}})]
    editor.request.value = "Just summarize: short"
    editor.replan_button.click()
    editor.wait(10)
    assert [t.task for t in editor.tasks] == ["summarization"] and list(editor.rows) == [0]
    assert editor.run.request == "Just summarize: short" and editor.run.plan.tasks[0].args == {"text": "short"}
    assert editor.row(0).model.value == "sleep-0.05" and "New plan: 1 tasks" in editor.message.value


def test_replan_rebinds_the_shared_state_under_the_editors_lock(tmp_path):
    """The ticker and the executor's events read `results`, `tasks` and `choices` under the lock from other
    threads: a re-plan must never let them see the new tasks with the old results."""
    editor, _, _ = make_editor(tmp_path)
    seen: list[tuple[str, bool]] = []

    class Watched(PlanEditor):
        def __setattr__(self, name, value):
            if name in ("results", "tasks", "choices", "_shown", "_outputs", "typed"):
                seen.append((name, self._lock._is_owned()))
            super().__setattr__(name, value)

    editor.__class__ = Watched
    new_plan = {"tasks": [{"task": "summarization", "id": 0, "dep": [], "args": {"text": "short"}}]}
    editor.pipeline.llm.replies[:0] = [json.dumps(new_plan), json.dumps({"0": {"id": "sleep-0.05", "reason": "r"}})]
    editor.request.value = "Just summarize: short"
    editor.replan_button.click()
    editor.wait(10)
    assert [t.task for t in editor.tasks] == ["summarization"]
    assert {name for name, _ in seen} >= {"results", "tasks", "choices", "_shown", "_outputs"}
    assert [name for name, locked in seen if not locked] == []


def test_a_failing_replan_keeps_the_plan_and_shows_the_error(tmp_path):
    editor, _, _ = make_editor(tmp_path)
    editor.pipeline.llm.replies[:0] = ["not a plan", "still not a plan"]
    editor.replan_button.click()
    editor.wait(10)
    assert [t.id for t in editor.tasks] == [0, 1]
    assert "Re-plan failed, the old plan is kept" in editor.message.value


def test_export_shows_the_plan_as_json(tmp_path):
    editor, _, _ = make_editor(tmp_path)
    editor.export_button.click()
    assert editor.exported.layout.display is None
    assert json.loads(editor.exported.value) == PLAN["tasks"]


def test_static_fallback_for_front_ends_without_widgets(tmp_path):
    editor, _, _ = make_editor(tmp_path)
    bundle = editor._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == editor.widget.model_id
    assert "<table>" in bundle["text/html"] and "translation" in bundle["text/html"]
    assert "[1] translation(text=output of task 0, language='French')" in bundle["text/plain"]
    assert "%hugginggpt run" in bundle["text/plain"]


# --------------------------------------------------------------------------- files the user did not give (issue 13)


def picture(path) -> str:
    Image.new("RGB", (4, 4), "green").save(path)
    return str(path)


def describe_plan(*images: str) -> dict:
    return {"tasks": [{"task": "image-to-text", "id": i, "dep": [], "args": {"image": image}}
                      for i, image in enumerate(images)]}


def picks(n: int, model: str = "sleep-0") -> str:
    return json.dumps({str(i): {"id": model, "reason": "r"} for i in range(n)})


def test_a_file_the_user_did_not_give_is_refused_on_its_row_until_allowed_with_one_click(tmp_path):
    given, invented = picture(tmp_path / "holiday.png"), picture(tmp_path / "private.png")
    editor, experts, pipeline = make_editor(
        tmp_path, "A green square.", plan=describe_plan(given, invented), picks=picks(2),
        request=f"Describe {given}", insists=True,
    )
    assert [(r.task_id, r.arg, r.value) for r in editor.refused] == [(1, "image", invented)]
    assert editor.run_button.disabled and editor.step_button.disabled and editor.plan is None
    assert editor.row(0).refusals.children == () and list(editor.row(0).allow_buttons) == []
    assert states(editor) == {0: "queued", 1: "refused"} and "refused" in editor.row(1).status.value
    assert "task 1: image-to-text (refused)" in editor.graph.value
    (line, button) = editor.row(1).refusals.children
    assert html.escape(invented) in line.value and "you did not give" in line.value
    assert button is editor.row(1).allow_buttons[invented] and invented in button.tooltip
    assert button.description.startswith("Allow ") and button.description.endswith("/private.png")  # long: cut
    assert "did not give" in editor.run_button.tooltip
    editor.run_button.click()  # a click on the disabled button's handler still runs nothing
    assert editor.busy is None and experts.calls == [] and pipeline.allowed.accepted == []

    button.click()  # the user's one explicit yes
    assert pipeline.allowed.accepted == [invented]
    assert editor.refused == [] and editor.errors == [] and not editor.run_button.disabled
    assert editor.row(1).refusals.children == () and editor.row(1).allow_buttons == {}
    assert states(editor) == {0: "queued", 1: "queued"}
    editor.run_button.click()
    assert editor.wait(10)
    run = editor.run
    assert run.status == "done" and run.accepted == [invented]
    assert sorted(call[2]["image"] for call in experts.calls) == sorted([given, invented])
    assert json.loads(Path(run.run_dir, "run.json").read_text())["accepted"] == [invented]


def test_a_value_the_user_types_is_their_word_an_llm_value_they_did_not_touch_still_needs_the_click(tmp_path):
    first, second, typed = (picture(tmp_path / f"{name}.png") for name in ("first", "second", "mine"))
    editor, experts, pipeline = make_editor(
        tmp_path, "Two pictures.", plan=describe_plan(first, second), picks=picks(2),
        request="Describe my pictures", insists=True,
    )
    assert [r.task_id for r in editor.refused] == [0, 1]
    editor.row(0).args["image"].text.value = typed  # typed in the editor: no click needed
    assert [r.task_id for r in editor.refused] == [1] and editor.row(0).refusals.children == ()
    assert editor.run_button.disabled  # task 1 still holds the LLM's value, untouched
    assert pipeline.allowed.accepted == []  # nothing is accepted before it runs

    editor.row(1).allow_buttons[second].click()
    assert not editor.run_button.disabled
    editor.run_button.click()
    assert editor.wait(10)
    assert editor.run.status == "done" and editor.run.accepted == [second, typed]
    assert first not in pipeline.allowed.accepted and [c[2]["image"] for c in experts.calls if c[2]["image"] == first] == []


def test_only_a_typed_value_that_still_stands_counts_and_the_draft_is_widget_free(tmp_path):
    invented = picture(tmp_path / "invented.png")
    tasks = [Task(0, "image-to-text", args={"image": invented})]
    choices = {0: Choice(0, "m", "timed", "r", [])}
    allowed = Allowed.for_session(cwd=tmp_path)
    typed = TypedValues()
    check = check_draft(tasks, choices, REGISTRY, allowed, typed)
    assert check.plan is None and check.refused_on(0) == [
        Refusal(0, "image", invented, check.errors[0])] and "argument image=" in check.errors[0]
    typed.record(0, "image", invented)
    assert check_draft(tasks, choices, REGISTRY, allowed, typed).plan is not None
    typed.record(0, "image", invented + "x")  # typed on, then the field was set back by something else
    assert check_draft(tasks, choices, REGISTRY, allowed, typed).refused_on(0)
    typed.record(0, "image", invented)
    assert typed.accept_into(allowed, tasks, REGISTRY) == [invented] and allowed.accepted == [invented]
    assert check_draft(tasks, choices, REGISTRY, allowed).plan is not None
    assert check_draft([Task(i, "summarization", args={"text": "t"}) for i in range(31)],
                       {i: choices[0] for i in range(31)}, REGISTRY, allowed).errors[-1].startswith("the plan has 31 tasks")


def test_a_fallback_to_the_next_model_is_shown_on_the_row_and_in_the_static_views(tmp_path):
    editor, experts, _ = make_editor(tmp_path, "answer", models=("model-gone", "sleep-0"), picks=picks(2, "model-gone"))
    editor.run_button.click()
    assert editor.wait(10)
    line = "model model-gone failed: model not found (404) → model sleep-0"
    for task_id in (0, 1):
        assert f"fallback: {line}" in shown_text(editor.row(task_id).output)
    assert editor.run.results[0].model == "sleep-0"
    assert f"fallback: {line}" in editor.static_view().text and html.escape(line) in editor.static_view().html
    view = render.run_view(editor.run)
    assert f"fallback: {line}" in view.text and html.escape(line) in view.html
    clean = TaskResult(0, "summarization", "done", model="sleep-0", attempts=[Attempt("sleep-0", "timed")])
    assert render.fallback_view(clean) is None


# --------------------------------------------------------------------------- renderings


def test_image_audio_text_and_tables_render_as_the_right_mime_types(tmp_path):
    formatter = InteractiveShell.instance().display_formatter
    picture, sound = tmp_path / "p.png", tmp_path / "s.wav"
    Image.new("RGB", (8, 8), "green").save(picture)
    soundfile.write(sound, np.zeros(400), 8000)

    (image,) = render.artifact_displays(Artifact("image", path=str(picture)))
    data, _ = formatter.format(image)
    assert "image/png" in data and data["text/plain"] == f"[image {picture}]"
    (audio,) = render.artifact_displays(Artifact("audio", path=str(sound)))
    data, _ = formatter.format(audio)
    assert "<audio" in data["text/html"] and data["text/plain"] == f"[audio {sound}]"
    (text,) = render.artifact_displays(Artifact("text", text="a <b> tag"))
    assert text._repr_html_() == '<div style="white-space:pre-wrap">a &lt;b&gt; tag</div>'
    (table,) = render.artifact_displays(Artifact("data", data=[{"label": "cat", "score": 0.91234}]))
    assert "<th>label</th><th>score</th>" in table.html and "<td>0.912</td>" in table.html
    (fake,) = render.artifact_displays(Artifact("image", path=str(tmp_path / "x.image.txt"), text="made"))
    assert repr(fake) == f"made: {tmp_path / 'x.image.txt'}"


def test_detections_are_drawn_on_the_input_image(tmp_path):
    picture = tmp_path / "street.png"
    Image.new("RGB", (40, 30), "white").save(picture)
    boxes = [{"label": "car", "score": 0.9, "box": {"xmin": 5, "ymin": 5, "xmax": 20, "ymax": 20}}]
    result = TaskResult(0, "object-detection", "done", inputs={"image": str(picture)},
                        artifacts=[Artifact("data", text="1 car", data=boxes)])
    shown = render.result_displays(result)
    drawn = shown[-1]
    assert isinstance(drawn, render.ImageFile) and "boxes drawn on" in repr(drawn)
    pixels = Image.open(io.BytesIO(drawn.data)).convert("RGB")
    assert pixels.getpixel((5, 12)) != (255, 255, 255) and pixels.getpixel((35, 25)) == (255, 255, 255)
    assert any(isinstance(s, render.Rich) and "<td>car</td>" in s.html for s in shown)


def test_run_view_embeds_media_and_the_answer(tmp_path):
    editor, _, _ = make_editor(tmp_path, "the answer")
    editor.run_button.click()
    editor.wait(10)
    view = render.run_view(editor.run)
    assert "Request: Summarize a long story" in view.text and "Answer:\nthe answer" in view.text
    assert "<table>" in view.html and "run.json" in view.html


# --------------------------------------------------------------------------- the task graph


def test_graph_layers_follow_the_longest_dependency_path_and_survive_cycles():
    tasks = [
        Task(0, "summarization", args={"text": "a"}),
        Task(1, "translation", args={"text": "<GENERATED>-0"}),
        Task(2, "summarization", args={"text": "<GENERATED>-0 <GENERATED>-1"}),
        Task(3, "translation", args={"text": "b"}),
    ]
    assert layers(tasks) == {0: 0, 1: 1, 2: 2, 3: 0}
    svg = plan_svg(tasks, {0: "done", 1: "running"})
    assert svg.count("<rect") == 4 and svg.count("<polygon") == 3 and "#d6f5d6" in svg
    cyclic = [Task(0, "summarization", args={"text": "<GENERATED>-1"}), Task(1, "translation", args={"text": "<GENERATED>-0"})]
    svg = plan_svg(cyclic)
    assert svg.count("<rect") == 2 and 'stroke="#d33"' in svg  # the edge closing the cycle is red
    assert "no tasks" in plan_svg(Plan().tasks)
