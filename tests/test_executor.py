"""Stage 3: concurrency, dependency resolution, failure propagation, timeouts, interruption, reuse."""

import _thread
import json
import signal
import threading
import time

import pytest

from hgpt_magic.executor import Executor, RunInterrupted
from hgpt_magic.experts.base import ExpertBackend
from hgpt_magic.resources import Allowed
from hgpt_magic.testing import TimedExperts
from hgpt_magic.types import Artifact, Candidate, Choice, Plan, Selection, Task

TASKS = ["image-to-text", "text-to-speech", "summarization", "translation", "object-detection", "canny-control"]


def select(plan, models):
    """A selection giving task i the model models[i] (and the other models as fallbacks)."""
    return Selection(
        {
            t.id: Choice(t.id, models[t.id], "timed", "test", [Candidate(m, "timed") for m in dict.fromkeys(models)])
            for t in plan
        }
    )


def run(plan, models, tmp_path, **kwargs):
    experts = TimedExperts(TASKS)
    allowed = kwargs.pop("allowed", None) or Allowed.for_session([tmp_path])  # the test's own files are the user's
    executor = Executor([experts], max_workers=4, timeout=kwargs.pop("timeout", 30), allowed=allowed)
    return executor.execute(plan, select(plan, models), tmp_path, **kwargs), experts


def test_independent_tasks_overlap_and_dependents_wait(tmp_path):
    plan = Plan(
        [
            Task(0, "summarization", [], {"text": "a"}),
            Task(1, "translation", [], {"text": "b"}),
            Task(2, "summarization", [0, 1], {"text": "<GENERATED>-0 and <GENERATED>-1"}),
        ]
    )
    results, _ = run(plan, ["sleep-0.3", "sleep-0.3", "sleep-0"], tmp_path)
    r0, r1, r2 = results[0], results[1], results[2]
    assert all(r.status == "done" for r in results.values())
    assert r0.started < r1.ended and r1.started < r0.ended  # 0 and 1 ran at the same time
    assert r2.started >= max(r0.ended, r1.ended)  # 2 waited for both
    assert r2.inputs["text"] == "summarization(text=a) and translation(text=b)"


def test_generated_reference_resolves_to_the_output_type_the_consumer_needs(tmp_path):
    plan = Plan(
        [
            Task(0, "object-detection", [], {"image": str(_png(tmp_path))}),
            Task(1, "canny-control", [0], {"image": "<GENERATED>-0"}),
            Task(2, "text-to-speech", [0], {"text": "<GENERATED>-0"}),
        ]
    )
    results, _ = run(plan, ["sleep-0", "sleep-0", "sleep-0"], tmp_path / "run", allowed=Allowed.for_session([tmp_path]))
    image = results[0].artifact("image").path
    assert results[1].inputs["image"] == image  # the image output feeds the image input
    assert results[2].inputs["text"] == results[0].artifact("text").text  # the text output feeds text


def test_failure_skips_dependents_with_the_reason_and_independent_tasks_still_run(tmp_path):
    plan = Plan(
        [
            Task(0, "summarization", [], {"text": "a"}),
            Task(1, "translation", [0], {"text": "<GENERATED>-0"}),
            Task(2, "summarization", [1], {"text": "<GENERATED>-1"}),
            Task(3, "translation", [], {"text": "c"}),
        ]
    )
    results, experts = run(plan, ["fail", "sleep-0", "sleep-0", "sleep-0"], tmp_path)
    assert results[0].status == "failed" and "failed on purpose" in results[0].error
    assert results[1].status == "skipped" and "task 0 (summarization) failed" in results[1].error
    assert results[2].status == "skipped" and "task 1 (translation) skipped" in results[2].error
    assert results[3].status == "done"
    assert [c[0] for c in experts.calls].count("translation") == 1  # the skipped one never ran


def test_model_level_error_falls_back_to_the_next_candidate(tmp_path):
    plan = Plan([Task(0, "summarization", [], {"text": "a"})])
    experts = TimedExperts(TASKS)
    selection = Selection({0: Choice(0, "model-gone", "timed", "t", [Candidate("model-gone", "timed"), Candidate("sleep-0", "timed")])})
    results = Executor([experts]).execute(plan, selection, tmp_path)
    assert results[0].status == "done" and results[0].model == "sleep-0"
    assert [(a.model, a.error is None) for a in results[0].attempts] == [("model-gone", False), ("sleep-0", True)]


def test_missing_input_file_fails_the_task_clearly(tmp_path):
    plan = Plan([Task(0, "image-to-text", [], {"image": str(tmp_path / "nope.png")})])
    results, experts = run(plan, ["sleep-0"], tmp_path)
    assert results[0].status == "failed"
    assert results[0].error == f"image file not found: {tmp_path / 'nope.png'}"
    assert experts.calls == []


def test_slow_task_times_out_and_dependents_are_skipped(tmp_path):
    plan = Plan([Task(0, "summarization", [], {"text": "a"}), Task(1, "translation", [0], {"text": "<GENERATED>-0"})])
    results, _ = run(plan, ["sleep-30", "sleep-0"], tmp_path, timeout=0.2)
    assert results[0].status == "failed" and "timed out after 0.2 s" in results[0].error
    assert results[1].status == "skipped"


def test_crashing_expert_is_a_failed_task_not_a_crashed_run(tmp_path):
    class Broken(ExpertBackend):
        name = "broken"

        def can_serve(self, task, model):
            return True

        def run(self, task, model, inputs, ctx):
            raise ZeroDivisionError("boom")

    plan = Plan([Task(0, "summarization", [], {"text": "a"})])
    selection = Selection({0: Choice(0, "m", "broken", "t", [Candidate("m", "broken")])})
    results = Executor([Broken()]).execute(plan, selection, tmp_path)
    assert results[0].status == "failed" and results[0].error == "ZeroDivisionError: boom"


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler, as in a kernel or a terminal: a shell that starts jobs in the
    background sets SIGINT to "ignore", and then `interrupt_main` does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_keeps_finished_results_and_run_json_survives(tmp_path, ctrl_c_raises):
    class InterruptingExperts(TimedExperts):
        def run(self, task, model, inputs, ctx):
            if task == "translation":
                _thread.interrupt_main()  # what Ctrl-C does to the kernel's main thread
                ctx.cancel.wait(5)
            return super().run(task, model, inputs, ctx)

    plan = Plan([Task(0, "summarization", [], {"text": "a"}), Task(1, "translation", [0], {"text": "<GENERATED>-0"}),
                 Task(2, "summarization", [1], {"text": "<GENERATED>-1"})])
    saved = {}

    def save(results):
        saved["json"] = json.dumps({k: r.to_dict() for k, r in results.items()})

    executor = Executor([InterruptingExperts(TASKS)])
    with pytest.raises(RunInterrupted) as info:
        executor.execute(plan, select(plan, ["sleep-0"] * 3), tmp_path, on_change=save)
    results = info.value.results
    assert results[0].status == "done" and results[0].artifacts
    assert results[1].status == "cancelled" and results[2].status == "cancelled"
    assert json.loads(saved["json"])["0"]["status"] == "done"


def test_stop_event_lets_running_tasks_finish_and_cancels_the_rest(tmp_path):
    stop = threading.Event()
    plan = Plan([Task(0, "summarization", [], {"text": "a"}), Task(1, "translation", [0], {"text": "<GENERATED>-0"})])

    def on_event(event):
        if event.kind == "started" and event.result.task_id == 0:
            stop.set()

    results, _ = run(plan, ["sleep-0.1", "sleep-0"], tmp_path, stop=stop, on_event=on_event)
    assert results[0].status == "done"
    assert results[1].status == "cancelled" and "stopped" in results[1].error


def test_unchanged_tasks_are_reused_and_changed_ones_rerun_with_dependents(tmp_path):
    plan = Plan(
        [
            Task(0, "summarization", [], {"text": "a"}),
            Task(1, "translation", [], {"text": "b"}),
            Task(2, "summarization", [1], {"text": "<GENERATED>-1"}),
        ]
    )
    first, experts = run(plan, ["sleep-0"] * 3, tmp_path)
    plan[1].args["text"] = "B"  # the user edits task 1
    executor = Executor([experts])
    second = executor.execute(plan, select(plan, ["sleep-0"] * 3), tmp_path, previous=first)
    assert second[0].reused and second[0].artifacts == first[0].artifacts
    assert not second[1].reused and not second[2].reused
    assert len(experts.calls) == 3 + 2


def test_stepping_runs_only_the_given_tasks_and_keeps_the_rest_pending(tmp_path):
    plan = Plan([Task(0, "summarization", [], {"text": "a"}), Task(1, "translation", [0], {"text": "<GENERATED>-0"})])
    experts = TimedExperts(TASKS)
    executor = Executor([experts])
    selection = select(plan, ["sleep-0", "sleep-0"])
    step1 = executor.execute(plan, selection, tmp_path, only={0})
    assert (step1[0].status, step1[1].status) == ("done", "pending")
    step2 = executor.execute(plan, selection, tmp_path, previous=step1, only={1})
    assert step2[0].reused and step2[1].status == "done"
    assert len(experts.calls) == 2


def test_artifact_file_names_never_collide(tmp_path):
    plan = Plan([Task(i, "canny-control", [], {"image": str(_png(tmp_path))}) for i in range(8)])
    results, _ = run(plan, ["sleep-0"] * 8, tmp_path / "run", allowed=Allowed.for_session([tmp_path]))
    paths = [r.artifact("image").path for r in results.values()]
    assert len(set(paths)) == 8


def _png(tmp_path):
    from PIL import Image

    path = tmp_path / "in.png"
    if not path.exists():
        Image.new("RGB", (4, 4)).save(path)
    return path


def test_timestamps_are_wall_clock(tmp_path):
    results, _ = run(Plan([Task(0, "summarization", [], {"text": "a"})]), ["sleep-0"], tmp_path)
    assert abs(results[0].started - time.time()) < 60
    assert isinstance(results[0].artifacts[0], Artifact)


def test_a_refused_token_stops_the_run_with_the_reason(tmp_path):
    from hgpt_magic.experts.hf import AuthError

    class Refusing(TimedExperts):
        def run(self, task, model, inputs, ctx):
            if task == "summarization":
                raise AuthError("Hugging Face refused the token (HTTP 401): set a valid HF_TOKEN")
            return super().run(task, model, inputs, ctx)

    plan = Plan([Task(0, "summarization", [], {"text": "a"}), Task(1, "translation", [], {"text": "b"})])
    executor = Executor([Refusing(TASKS)], max_workers=1)  # one worker: task 1 waits behind task 0
    results = executor.execute(plan, select(plan, ["sleep-0", "sleep-0"]), tmp_path)
    assert results[0].status == "failed" and "HTTP 401" in results[0].error
    assert results[1].status == "cancelled" and results[1].error.startswith("not run: Hugging Face refused")


def test_a_result_that_fell_back_is_reused_for_the_same_choice():
    """Chosen X failed and Y answered: running X again would fail over to Y again, so Y's result stands."""
    from hgpt_magic.types import Attempt, TaskResult

    result = TaskResult(task_id=0, task="summarization", status="done", model="model-y", inputs={"text": "x"},
                        attempts=[Attempt("model-x", "b", error="404"), Attempt("model-y", "b")])
    assert result.reusable_for("summarization", "model-x", {"text": "x"})
    assert result.reusable_for("summarization", "model-y", {"text": "x"})
    assert not result.reusable_for("summarization", "model-z", {"text": "x"})
    assert not result.reusable_for("summarization", "model-x", {"text": "y"})
