"""`%%hugginggpt` and `%hugginggpt`: HuggingGPT in a notebook, on top of the pipeline.

    %load_ext hgpt_magic

    %%hugginggpt
    Describe {photo} and read the description aloud

The cell is planned and models are picked, then the plan editor is shown and the magic returns: the
user edits the plan and clicks Run (or Step). `--auto` runs at once and prints the results as ordinary
outputs, which is what a saved or batch-executed notebook wants. The magic keeps one pipeline per
session, so the chat history (HuggingGPT's multi-turn mode) carries over from cell to cell.

Settings are traitlets of the `HuggingGPT` configurable: `%config HuggingGPT.llm = "hf:..."`, or
`c.HuggingGPT.llm = ...` in `ipython_config.py`.
"""

from __future__ import annotations

import collections
import difflib
import keyword
import mimetypes
import numbers
import os
import re
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Enum, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from . import safe_text
from .draft import missing_files
from .executor import RunInterrupted, TaskEvent
from .experts import ExpertSpecError
from .llm import LLMError, default_llm_spec
from .pipeline import HuggingGPT as Pipeline
from .pipeline import out_dir_problem
from .planning import PlanError
from .secrets import SECRET_ENV_VARS, hf_token, mask, mask_secrets
from .selector import ASK_POLICIES, ask_policy_from_env, no_backend_reason
from .streaming import AnswerStream
from .types import Plan, Run, RunNotSaved, Task, TaskResult
from .widgets import render


class HuggingGPT(Configurable):
    """Settings of the `%%hugginggpt` magic (`%config HuggingGPT` lists them).

    Named `HuggingGPT` on purpose: traitlets takes the config section from the class name, and
    `%config HuggingGPT.llm = ...` / `c.HuggingGPT.llm` is what users type. It is NOT the pipeline
    (`hgpt_magic.HuggingGPT`, imported here as `Pipeline`); code in this package says `MagicSettings`.
    """

    llm = Unicode(
        None, allow_none=True, help="Controller LLM: local, gguf:PATH, openai:MODEL, hf:MODEL or URL#MODEL "
        "(default: $HGPT_LLM, else local)."
    ).tag(config=True)
    experts = Unicode("auto", help="Expert backends, comma-separated, first preferred: auto, local, llm.").tag(
        config=True
    )
    top_k = Int(5, help="Candidate models offered per task.").tag(config=True)
    select = Enum(
        ASK_POLICIES, None, allow_none=True, help="When the LLM picks a task's model among several: auto (only "
        "when the request names what a lower-ranked one is better at), always, never (default: $HGPT_SELECT, else auto)."
    ).tag(config=True)
    auto = Bool(False, help="Run at once, without waiting for edits in the plan editor.").tag(config=True)
    out_dir = Unicode(
        None, allow_none=True, help="Where run directories go (default: $HGPT_OUT, else ./hgpt-runs)."
    ).tag(config=True)

    @validate("top_k")
    def _check_top_k(self, proposal):
        if proposal["value"] < 1:
            raise TraitError("HuggingGPT.top_k must be at least 1")
        return proposal["value"]


def _show_progress(text: str) -> None:
    """A line about slow one-time work, in the cell's output as it begins (stdout reaches the notebook at once)."""
    print(f"HuggingGPT: {mask_secrets(text)}", flush=True)


def _check_writable(folder: Path) -> None:
    """An out_dir that cannot be written is a setting to fix, said before any model is loaded."""
    problem = out_dir_problem(folder)
    if problem:
        raise UsageError(f"{problem}; set %config HuggingGPT.out_dir (or $HGPT_OUT) to a folder you can write")


# --------------------------------------------------------------------------- {name} interpolation

_NAME_RE = re.compile(r"\{\{(\w+)\}\}|\{(\w+)\}")


#: The magic's settings class under an unambiguous name (see `HuggingGPT` above).
MagicSettings = HuggingGPT

class Resources:
    """Where in-memory media from the notebook are saved: the run's directory, made on first use."""

    def __init__(self, new_dir: Callable[[], Path]):
        self._new_dir = new_dir
        self.dir: Path | None = None

    def path(self, name: str, suffix: str) -> Path:
        if self.dir is None:
            self.dir = self._new_dir()
        return self.dir / f"{name}{suffix}"


class Request(NamedTuple):
    """A cell's request after `{name}` interpolation, in two forms.

    `text` is what the LLM reads: every variable's value. `given` is what the user gave as their own:
    their words, with each variable that *is* a resource (a path, a URL, an image or audio saved to a
    file) by its value, and each variable that holds text (a scraped page, a transcript) left as `{name}`.
    Files and URLs a plan may touch are read from `given` only, so text inside a variable is data: a path
    or URL it mentions does not become the user's word (resources.py).
    """

    text: str
    given: str


def interpolate_request(text: str, namespace: Mapping[str, Any], resources: Resources) -> Request:
    """Replace `{name}` by the variable's value as text, or by the path of the media file it was saved to;
    see `Request` for the two forms. Unknown names and other braces stay as they are; `{{name}}` is a
    literal `{name}`."""
    request: list[str] = []
    given: list[str] = []
    last = 0
    for match in _NAME_RE.finditer(text):
        request.append(text[last:match.start()])
        given.append(text[last:match.start()])
        last = match.end()
        name = match.group(1) or match.group(2)
        if match.group(1):
            shown = own = "{" + name + "}"
        elif name not in namespace:
            warnings.warn(f"{{{name}}} is not a notebook variable, so it stays as typed; write {{{{{name}}}}} "
                          "for literal braces", stacklevel=3)
            shown = own = match.group(0)
        else:
            shown = as_text(name, namespace[name], resources)
            own = shown if is_resource(namespace[name]) else "{" + name + "}"
        request.append(shown)
        given.append(own)
    request.append(text[last:])
    given.append(text[last:])
    return Request("".join(request), "".join(given))


def interpolate(text: str, namespace: Mapping[str, Any], resources: Resources) -> str:
    """The request the LLM reads (`interpolate_request(...).text`)."""
    return interpolate_request(text, namespace, resources).text


def is_resource(value: Any) -> bool:
    """Whether a variable *is* a resource rather than text: a `Path`; a string that is one whole URL or
    path (no white space; a slash, a dot or a leading `~`); or an image or audio object (`as_text` saves
    it to a file). Anything else is text, and text in a variable is data, whatever it mentions."""
    if isinstance(value, Path):
        return True
    if isinstance(value, str):
        word = value.strip()
        return (bool(word) and len(word) <= 4096 and not any(c.isspace() for c in word)
                and ("/" in word or "." in word or word.startswith("~")))
    pil = sys.modules.get("PIL.Image")
    np = sys.modules.get("numpy")
    display_mod = sys.modules.get("IPython.display")
    return bool(
        (pil is not None and isinstance(value, pil.Image))
        or (np is not None and isinstance(value, np.ndarray))
        or (isinstance(value, tuple) and len(value) == 2 and np is not None and isinstance(value[0], np.ndarray | list))
        or (display_mod is not None and isinstance(value, display_mod.Audio | display_mod.Image))
    )


def as_text(name: str, value: Any, resources: Resources) -> str:
    """A value for the request: text as is; an image or audio object saved as a file, by path."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Number | Path):
        return str(value)
    pil = sys.modules.get("PIL.Image")  # only when PIL is loaded can the value be a PIL image
    if pil is not None and isinstance(value, pil.Image):
        path = resources.path(name, ".png")
        value.save(path, format="PNG")
        return str(path)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return _save_image_array(name, value, resources)
    if isinstance(value, tuple) and len(value) == 2 and np is not None and isinstance(value[0], np.ndarray | list):
        return _save_audio_array(name, value[0], value[1], resources)
    display_mod = sys.modules.get("IPython.display")
    if display_mod is not None and isinstance(value, display_mod.Audio | display_mod.Image):
        return _save_display_object(name, value, resources)
    try:
        return str(value)
    except Exception as exc:  # a broken __str__ is the variable's problem, said in one line
        raise UsageError(f"{{{name}}}: cannot turn the {type(value).__name__} into text ({type(exc).__name__}: "
                         f"{mask_secrets(exc)})") from None


def _save_image_array(name: str, array: Any, resources: Resources) -> str:
    import numpy as np
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        hint = f"; for audio write ({name}, sample_rate)" if array.ndim == 1 else ""
        raise UsageError(f"{{{name}}}: an array of shape {array.shape} is not an image (H×W, H×W×3 or H×W×4){hint}")
    if array.size == 0:
        raise UsageError(f"{{{name}}}: the image array of shape {array.shape} is empty")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise UsageError(f"{{{name}}}: the image array holds NaN or infinite values")
    if array.dtype != np.uint8:
        array = np.asarray(array, dtype=float)
        if array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    path = resources.path(name, ".png")
    Image.fromarray(array).save(path, format="PNG")
    return str(path)


def _save_audio_array(name: str, samples: Any, rate: Any, resources: Resources) -> str:
    import numpy as np
    import soundfile

    if not isinstance(rate, numbers.Integral) or rate <= 0:
        raise UsageError(f"{{{name}}}: audio is (samples, sample_rate) with a positive integer rate, not {rate!r}")
    data = np.asarray(samples)
    if data.ndim == 2 and data.shape[0] < data.shape[1] and data.shape[0] <= 8:
        data = data.T  # channels first (as IPython's Audio takes it) → frames first
    if data.ndim not in (1, 2) or data.size == 0:
        raise UsageError(f"{{{name}}}: audio samples must be a non-empty 1-D (mono) or 2-D (channels) array")
    if data.dtype.kind == "f" and np.abs(data).max() > 1.0:
        data = data / np.abs(data).max()
    path = resources.path(name, ".wav")
    soundfile.write(path, data, int(rate), subtype="PCM_16")
    return str(path)


def _save_display_object(name: str, value: Any, resources: Resources) -> str:
    """An `IPython.display.Audio` or `Image`: its embedded bytes, or its URL when it only links."""
    if not value.data:
        if getattr(value, "url", None):
            return value.url
        raise UsageError(f"{{{name}}}: the display object holds no data")
    if hasattr(value, "mimetype"):  # Audio
        suffix = mimetypes.guess_extension(value.mimetype or "audio/wav") or ".wav"
    else:
        suffix = "." + (value.format or "png")
    path = resources.path(name, suffix)
    path.write_bytes(value.data)
    return str(path)


# --------------------------------------------------------------------------- the magics

SUBCOMMANDS = {
    "help": "this help",
    "config": "the backends and settings in use (tokens masked)",
    "tasks": "the task types the planner may use",
    "models TASK": "candidate models for a task: downloads, likes, which backend serves each",
    "history": "the chat context kept across cells",
    "reset": "forget the chat context",
    "last": "the last Run: plan, results and answer",
    "run": "run the last planned request (after --plan-only, or where the editor is not live)",
}

EXAMPLES = """Examples:
  %%hugginggpt
  Describe {photo} and read the description aloud          ({photo}: a PIL image in the notebook)

  %%hugginggpt --auto --out result
  Read the text in notebooks/data/sign.png aloud

  %config HuggingGPT.llm = "hf:Qwen/Qwen2.5-72B-Instruct"   (settings; also c.HuggingGPT.* in ipython_config.py)"""


@magics_class
class HuggingGPTMagics(Magics):
    """The `%%hugginggpt` cell magic and the `%hugginggpt` line magic.

    `factory(llm=, experts=, top_k=, out_dir=)` builds the pipeline (tests inject deterministic ones);
    `live_widgets` is None to detect whether widgets can be live (a kernel is attached), or a bool.
    """

    def __init__(self, shell=None, *, factory: Callable[..., Pipeline] | None = None):
        super().__init__(shell)
        try:
            self.settings = MagicSettings(parent=shell)  # picks up c.HuggingGPT.* from ipython_config.py
        except TraitError as exc:  # a bad value there (or left by a refused %config): say so, use defaults
            print(f"HuggingGPT: configuration ignored: {exc}", file=sys.stderr)
            self.settings = MagicSettings()
        self.factory = factory or Pipeline
        self.live_widgets: bool | None = None
        self.last_editor = None
        self._pipeline: Pipeline | None = None
        self._key: tuple | None = None

    # ------------------------------------------------------------------ the pipeline

    def pipeline_for(self, llm: str | None = None, experts: str | None = None) -> Pipeline:
        """The session's pipeline for these specs (the settings' by default), rebuilt when they change.

        The chat history moves to the new pipeline, so changing the LLM does not forget the conversation.
        """
        key = (llm or self.settings.llm, experts or self.settings.experts, self.settings.out_dir)
        if self._pipeline is None or key != self._key:
            try:
                new = self.factory(llm=key[0], experts=key[1], top_k=self.settings.top_k, out_dir=key[2])
            except ExpertSpecError as exc:
                raise UsageError(safe_text.terminal(exc)) from None
            if self._pipeline is not None:
                new.history = self._pipeline.history
                new.last_run = self._pipeline.last_run
            self._pipeline, self._key = new, key
        return self._pipeline

    @property
    def pipeline(self) -> Pipeline:
        return self.pipeline_for()

    @pipeline.setter
    def pipeline(self, value: Pipeline) -> None:
        """Use this pipeline object (kept until a cell asks for other specs or the settings change)."""
        self._pipeline, self._key = value, (self.settings.llm, self.settings.experts, self.settings.out_dir)

    def live(self) -> bool:
        """Whether widgets can be live here (a kernel with a front end), unless `live_widgets` says."""
        if self.live_widgets is not None:
            return self.live_widgets
        return getattr(self.shell, "kernel", None) is not None

    # ------------------------------------------------------------------ %%hugginggpt

    @magic_arguments("%hugginggpt")
    @argument("--llm", metavar="SPEC", help="controller LLM for this cell: local, gguf:PATH, openai:MODEL, "
              "hf:MODEL or URL#MODEL (default: %%config HuggingGPT.llm, else $HGPT_LLM, else local)")
    @argument("--experts", metavar="SPEC", help="expert backends, comma-separated: auto, local, llm")
    @argument("--top-k", type=int, metavar="K", help="candidate models offered per task (default 5)")
    @argument("--auto", action="store_true", help="run at once, without waiting for edits; results are "
              "ordinary cell outputs (saved with the notebook)")
    @argument("--plan-only", action="store_true", help="plan and pick models, run nothing")
    @argument("--out", metavar="VAR", help="also put the Run in this variable (the last one is always in _hgpt)")
    @argument("--no-respond", action="store_true", help="run the tasks but skip the LLM's final answer")
    @argument("-h", "--help", action="store_true", help="show this help")
    @cell_magic("hugginggpt")
    def hugginggpt_cell(self, line: str, cell: str) -> None:
        """Ask HuggingGPT: the LLM plans tasks, picks an expert model for each, runs them and answers.

        Write the request in the cell body. {name} puts a notebook variable into it: text and numbers
        as text; a PIL image, a numpy image array, audio as (samples, rate) or IPython.display.Audio
        are saved into the run directory and passed by path. {{name}} is a literal {name}.

        The plan editor appears: change tasks, arguments and models, then Run, or Step through it.
        """
        try:
            args = parse_argstring(self.hugginggpt_cell, line)
        except ValueError as exc:  # an unbalanced quote
            raise UsageError(f"cannot read the options: {exc}") from None
        if args.help:
            print(self.help_text())
            return
        if args.top_k is not None and args.top_k < 1:
            raise UsageError("--top-k must be at least 1")
        if args.out is not None and (not args.out.isidentifier() or keyword.iskeyword(args.out)):
            raise UsageError(f"--out needs a variable name, not {args.out!r}")
        if args.out is not None:
            self._check_out_name(args.out)
        text = cell.strip()
        if not text:
            raise UsageError("the cell is empty: write your request below %%hugginggpt (e.g. Describe {photo})")

        pipeline = self.pipeline_for(args.llm, args.experts)
        pipeline.top_k = args.top_k or self.settings.top_k
        pipeline.select_policy = self.settings.select
        _check_writable(pipeline.out_dir)
        resources = Resources(pipeline.new_run_dir)
        request = interpolate_request(text, self.shell.user_ns, resources)
        respond = not args.no_respond
        editing = not (args.plan_only or args.auto or self.settings.auto or not self.live())
        run = self._plan(pipeline, request, resources, args.out, editing=editing, respond=respond)
        if run is None:
            return
        if args.plan_only:
            display(self._plan_view(pipeline, run))
        elif args.auto or self.settings.auto or not self.live():
            self._check_files(pipeline, run)
            self.run_now(pipeline, run, respond=respond)
        else:
            from .widgets.editor import PlanEditor

            self.last_editor = PlanEditor(pipeline, run, respond=respond)
            display(self.last_editor)

    def _plan(
        self, pipeline: Pipeline, request: Request, resources: Resources, out: str | None, *,
        editing: bool = False, respond: bool = True,
    ) -> Run | None:
        """Plan and select; publish the Run (`_hgpt`, `--out`). A plan failure is shown, never raised: with
        the editor, the editor opens on the suggested tasks for the request's files (`PlanError.suggestion`)
        with one sentence saying what could not be worked out; otherwise that sentence is the cell's output."""
        pipeline.on_progress = _show_progress  # a first run's minute of preparation is announced, not silent
        try:
            run = pipeline.run(request.text, plan_only=True, given=request.given)
        except PlanError as exc:
            run = pipeline.last_run
            self._publish(run, out, resources)
            if editing:
                from .widgets.editor import PlanEditor

                run.plan = Plan([Task.from_dict(t) for t in exc.suggestion or []], repairs=[str(exc)])
                self.last_editor = PlanEditor(pipeline, run, respond=respond)
                self.last_editor.tell(str(exc))
                display(self.last_editor)
                return None
            raw = f"The LLM replied:\n{exc.raw}" if exc.raw else None
            display(render.error_view(str(exc), raw))
            return None
        except (LLMError, ExpertSpecError) as exc:  # a bad spec, a missing key, an unreachable server
            raise UsageError(safe_text.terminal(exc)) from None  # a server's words: masked, no control codes
        self._publish(run, out, resources)
        return run

    def _publish(self, run: Run, out: str | None, resources: Resources) -> None:
        if resources.dir is not None:
            run.run_dir = str(resources.dir)  # the executor writes its outputs beside the inputs
        self.shell.user_ns["_hgpt"] = run
        if out:
            self.shell.user_ns[out] = run

    def _plan_view(self, pipeline: Pipeline, run: Run) -> render.Rich:
        notes = list(run.plan.repairs) + missing_files(list(run.plan), pipeline.registry)
        return render.plan_view(run.plan, run.selection, notes=notes)

    def _check_files(self, pipeline: Pipeline, run: Run) -> None:
        """A plan that names a missing input file is a user error: say so before running anything."""
        problems = pipeline.resource_problems(run.plan) + missing_files(list(run.plan), pipeline.registry)
        if problems:
            first = safe_text.terminal(problems[0])  # it quotes the LLM's values
            raise UsageError(first + ("" if len(problems) == 1 else f" (and {len(problems) - 1} more)"))

    def _check_out_name(self, name: str) -> None:
        """`--out print` would shadow a builtin, `--out df` overwrite the user's data: both are refused."""
        import builtins

        if hasattr(builtins, name):
            raise UsageError(f"--out {name} would hide the builtin {name}(); choose another name")
        old = self.shell.user_ns.get(name)
        if name in self.shell.user_ns and not isinstance(old, Run):
            raise UsageError(f"--out {name} would overwrite your {type(old).__name__} variable {name}; "
                             "choose another name")

    def run_now(self, pipeline: Pipeline, run: Run, *, respond: bool = True, previous=None) -> Run:
        """Execute and answer in the foreground; progress and results are ordinary outputs of the cell."""
        live = self.live()
        states: dict[int, TaskResult] = dict(run.results)

        def table() -> render.Rich:
            return render.plan_view(run.plan, run.selection, states, notes=run.plan.repairs, now=time.time())

        handle = display(table(), display_id=True) if live else None
        if not live:
            display(table())

        def on_event(event: TaskEvent) -> None:
            states[event.result.task_id] = event.result
            if handle is not None:
                handle.update(table())
            if event.kind == "finished":
                for note in event.result.fallbacks():  # which backend really answered
                    print(safe_text.terminal(f"task {event.result.task_id}: {note}"))
                for shown in render.result_displays(event.result):
                    display(shown)

        answer = _LiveAnswer() if live else None  # a terminal would print every update anew

        try:
            pipeline.finish(
                run, respond=respond, previous=previous, on_event=on_event,
                on_text=answer.add if answer is not None else None,
            )
        except RunInterrupted:
            display(render.error_view(f"Interrupted: finished results are kept in {run.run_dir}/run.json"))
            return run
        except RunNotSaved as exc:  # a full disk: the run is failed, said in one line
            display(render.error_view(f"HuggingGPT: {exc}"))
            return run
        states.update(run.results)
        if handle is not None:
            handle.update(table())
        if answer is not None and answer.handle is not None:
            answer.handle.update(render.answer_view(run.answer or ""))  # the checked answer replaces the draft
        elif run.answer:
            display(render.answer_view(run.answer))
        return run

    # ------------------------------------------------------------------ %hugginggpt

    @line_magic("hugginggpt")
    def hugginggpt_line(self, line: str) -> None:
        """`%hugginggpt help | config | tasks | models TASK | history | reset | last | run`."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot read {line!r}: {exc}") from None
        command, rest = (words[0], words[1:]) if words else ("help", [])
        if command in ("-h", "--help", "?"):
            command = "help"
        handlers = {
            "help": self._help,
            "config": self._config,
            "tasks": self._tasks,
            "models": self._models,
            "history": self._history,
            "reset": self._reset,
            "last": self._last,
            "run": self._run_last,
        }
        if command not in handlers:
            raise UsageError(f"unknown subcommand {command!r}: use one of {', '.join(handlers)}")
        if command != "models" and rest:
            raise UsageError(f"%hugginggpt {command} takes no arguments")
        handlers[command](rest)

    def help_text(self) -> str:
        options = self.hugginggpt_cell.parser.format_help()
        commands = "\n".join(f"  %hugginggpt {name:<12} {what}" for name, what in SUBCOMMANDS.items())
        settings = "\n".join(
            f"  %config HuggingGPT.{name} = ...   {trait.help}"
            for name, trait in self.settings.traits(config=True).items()
        )
        return f"{options}\nLine commands:\n{commands}\n\nSettings:\n{settings}\n\n{EXAMPLES}"

    def _help(self, _rest: list[str]) -> None:
        print(self.help_text())

    def _config(self, _rest: list[str]) -> None:
        pipeline = self.pipeline
        s = self.settings
        experts = ", ".join(f"{b.name}{' (offline)' if b.offline else ''}" for b in pipeline.experts)
        rows = [
            ("llm", s.llm or f"{default_llm_spec()} (default)"),
            ("experts", f"{s.experts} → {experts}"),
            ("top_k", str(s.top_k)),
            ("select", s.select or f"{ask_policy_from_env()} (default)"),
            ("auto", str(s.auto)),
            ("out_dir", str(pipeline.out_dir)),
            ("task registry", f"{pipeline.registry.name} ({len(pipeline.registry)} task types)"),
            ("history", f"{len(pipeline.history)} turns"),
        ]
        rows += [(f"${var}", mask(os.environ.get(var))) for var in SECRET_ENV_VARS]
        rows.append(("Hugging Face token (env or `hf auth login`)", mask(hf_token())))
        rows = [(name, mask_secrets(value)) for name, value in rows]
        display(_table(["setting", "value"], rows, "HuggingGPT configuration"))

    def _tasks(self, _rest: list[str]) -> None:
        pipeline = self.pipeline
        registry = pipeline.registry
        rows = []
        for t in registry:
            offered = pipeline.candidates(t.name, 1000)
            per_backend = collections.Counter(c.backend for c in offered)
            served = ", ".join(f"{name} ({n})" for name, n in per_backend.items()) or "none here"
            rows.append((t.name, t.signature().split("(", 1)[1].rsplit(")", 1)[0], " + ".join(t.outputs),
                         served, str(len(offered)), t.description))
        display(_table(["task", "inputs", "outputs", "served here by", "candidates", "what it does"], rows,
                       f"{len(registry)} task types ({registry.name})"))

    def _models(self, rest: list[str]) -> None:
        if not rest or len(rest) > 2:
            raise UsageError("usage: %hugginggpt models TASK [K]   (task names: %hugginggpt tasks)")
        pipeline = self.pipeline
        task = rest[0]
        if task not in pipeline.registry:
            close = difflib.get_close_matches(task, pipeline.registry.names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see %hugginggpt tasks"
            raise UsageError(f"unknown task {task!r}{hint}")
        try:
            k = int(rest[1]) if len(rest) == 2 else pipeline.top_k
        except ValueError:
            raise UsageError(f"K must be a number, not {rest[1]!r}") from None
        offered = pipeline.candidates(task, max(1, k))
        if not offered:
            display(render.Rich(f"<p>{render.esc(no_backend_reason(task))}</p>", no_backend_reason(task)))
            return
        rows = [
            (c.id, c.backend + (" (offline)" if c.offline else ""), f"{c.downloads:,}", str(c.likes),
             c.license or "", c.description[:100])
            for c in offered
        ]
        display(_table(["model", "backend", "downloads", "likes", "license", "description"], rows,
                       f"Top {len(offered)} models for {task}"))

    def _history(self, _rest: list[str]) -> None:
        history = self.pipeline.history
        if not history:
            print("HuggingGPT: no history yet (each answered request becomes context for the next).")
            return
        rows = [(str(i), turn.request, turn.answer) for i, turn in enumerate(history, 1)]
        display(_table(["#", "request", "answer"], rows, f"Chat history: {len(history)} turns"))

    def _reset(self, _rest: list[str]) -> None:
        self.pipeline.reset()
        print("HuggingGPT: chat history cleared; the next request is planned without context.")

    def _last(self, _rest: list[str]) -> None:
        run = self.pipeline.last_run or self.shell.user_ns.get("_hgpt")
        if run is None:
            print("HuggingGPT: no run yet.")
            return
        display(render.run_view(run))

    def _run_last(self, _rest: list[str]) -> None:
        pipeline = self.pipeline
        run = pipeline.last_run
        if run is None or run.plan is None or run.status not in ("selected", "interrupted"):
            raise UsageError("nothing to run: plan a request first (%%hugginggpt --plan-only)")
        editor = self.last_editor if self.last_editor is not None and self.last_editor.run is run else None
        previous = None
        if editor is not None:  # the plan as edited in the editor
            if editor.busy is not None:
                raise UsageError("the plan editor is already running this plan")
            if editor.errors:
                raise UsageError(f"the edited plan cannot run: {editor.errors[0]}")
            run.plan, run.selection, previous = editor.plan, editor.selection(), dict(editor.results)
        self._check_files(pipeline, run)
        self.run_now(pipeline, run, previous=previous)


def _table(columns: list[str], rows: list[tuple[str, ...]], caption: str) -> render.Rich:
    """A small table as HTML and as aligned text."""
    head = "".join(f"<th style='text-align:left'>{render.esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{render.esc(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    widths = [min(40, max(len(str(x)) for x in [c, *(r[i] for r in rows)])) for i, c in enumerate(columns)]
    lines = [caption, "  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in rows]
    return render.Rich(f"<table><caption>{render.esc(caption)}</caption><tr>{head}</tr>{body}</table>", "\n".join(lines))


def load_ipython_extension(ipython) -> None:
    """`%load_ext hgpt_magic`: register the magics and the `HuggingGPT` settings for `%config`."""
    magics = HuggingGPTMagics(ipython)
    ipython.register_magics(magics)
    ipython.configurables.append(magics.settings)


def unload_ipython_extension(ipython) -> None:
    manager = ipython.magics_manager
    magics = manager.registry.pop(HuggingGPTMagics.__name__, None)
    for kind in ("line", "cell"):
        manager.magics[kind].pop("hugginggpt", None)
    if magics is not None and magics.settings in ipython.configurables:
        ipython.configurables.remove(magics.settings)


class _LiveAnswer:
    """The answer in the cell's output as the LLM writes it: one display, updated with each new word."""

    def __init__(self) -> None:
        self.stream = AnswerStream()
        self.handle = None

    def add(self, piece: str) -> None:
        if not self.stream.add(piece):
            return  # no new whole word yet
        draft = render.answer_view(self.stream.shown().rstrip() + " …")
        if self.handle is None:
            self.handle = display(draft, display_id=True)
        else:
            self.handle.update(draft)
