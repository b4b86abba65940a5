"""Hugging Face Inference Providers as experts, through `huggingface_hub.InferenceClient`.

`HFExperts` (spec `hf` or `hf:PROVIDER`) runs catalogue models remotely with the user's token. The
per-task code (`TASKS`) turns the registry's slots into client arguments and the client's outputs into
the project's artifacts; the same table drives `EndpointExperts`, whose models are URLs. Remote
calls are bounded three ways: a timeout per request, a few retries with backoff on 429/5xx/connection
errors (Retry-After honoured), and a semaphore per backend. Errors become `ExpertError`s the executor
understands: model-level ones (404, 410, not served by this provider, 5xx or timeout after the retries)
fall back to the next candidate; 401/403 is an `AuthError`, and the backend then refuses every later
call at once with the same message rather than knocking on the door again for each task.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import settings
from ..drawing import PALETTE, draw_boxes
from ..resilience import RetryPolicy, Slots, http_status, is_connection_error, is_transient, retry_with
from ..secrets import Secret, hf_token, hf_token_source, mask, mask_secrets
from ..types import Artifact
from .base import NOT_HUB_PREFIXES, ExpertBackend, ExpertContext, ExpertError

if TYPE_CHECKING:
    from huggingface_hub import InferenceClient

log = logging.getLogger(__name__)

#: Where tokens are made; fine-grained ones need "Make calls to Inference Providers".
TOKENS_URL = "https://huggingface.co/settings/tokens"


class AuthError(ExpertError):
    """The server refused the credentials (401/403). `fatal`: no other call with these credentials can work.

    Not model-level for `hf` (one token for every model: trying the next one only repeats the refusal);
    model-level for endpoints, where the next candidate has credentials of its own.
    """

    fatal = True

    def __init__(self, message: str, *, model_level: bool = False):
        super().__init__(message, model_level=model_level)


def default_policy() -> RetryPolicy:
    """The retry policy for remote experts; `HGPT_REMOTE_TIMEOUT` sets the seconds per request."""
    return RetryPolicy(timeout=settings.REMOTE_TIMEOUT.number())


def default_concurrency() -> int:
    """Requests in flight per backend; `HGPT_REMOTE_CONCURRENCY` overrides the default of 4."""
    return max(1, settings.REMOTE_CONCURRENCY.integer())


# --------------------------------------------------------------------------------------------
# Artifacts from model outputs (shared with the transformers backend, whose outputs have the same keys)


def field_of(item: Any, key: str, default: Any = None) -> Any:
    """`item.key` or `item[key]`: huggingface_hub returns dataclasses, transformers plain dicts."""
    if isinstance(item, dict):
        return item.get(key, default)
    return getattr(item, key, default)


def plain(value: Any) -> Any:
    """JSON-able copy of an output (dataclasses and dicts nested in lists); bytes and images dropped."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if not isinstance(v, bytes | bytearray)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, float):
        return round(value, 6)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _score(item: Any) -> str:
    score = field_of(item, "score")
    return f" {float(score):.2f}" if isinstance(score, int | float) else ""


def labels_artifact(items: Iterable[Any], label_key: str = "label", limit: int = 5) -> Artifact:
    """`cat 0.93, dog 0.04` as the readable text; every label and score in `data`."""
    items = list(items)
    text = ", ".join(f"{field_of(i, label_key)}{_score(i)}" for i in items[:limit]) or "(no label)"
    return Artifact(kind="data", text=text, data=plain(items))


def entities_artifact(items: Iterable[Any], limit: int = 20) -> Artifact:
    """Named entities as `Paris LOC 0.99, ...` (aggregated groups when the model gives them)."""
    items = list(items)
    parts = [
        f"{field_of(i, 'word')} {field_of(i, 'entity_group') or field_of(i, 'entity') or ''}{_score(i)}".replace("  ", " ")
        for i in items[:limit]
    ]
    return Artifact(kind="data", text=", ".join(parts) or "(no entity)", data=plain(items))


def answer_artifact(items: Any, key: str = "answer") -> Artifact:
    """The best answer as text (it feeds the next task); all answers with scores in `data`."""
    items = items if isinstance(items, list) else [items]
    best = max(items, key=lambda i: field_of(i, "score") or 0.0) if items else None
    text = str(field_of(best, key, "")).strip() if best is not None else ""
    return Artifact(kind="text", text=text, data=plain(items))


def text_artifact(text: Any) -> Artifact:
    return Artifact(kind="text", text=str(text).strip())


def save_image(image: Any, ctx: ExpertContext, text: str = "") -> Artifact:
    """A PIL image (or encoded image bytes) saved as PNG in the run directory."""
    from PIL import Image

    if isinstance(image, bytes | bytearray):
        image = Image.open(io.BytesIO(image))
    path = ctx.new_path(".png")
    image.save(path, format="PNG")
    return Artifact(kind="image", path=str(path), mime="image/png", text=text or f"image {image.width}x{image.height}")


_AUDIO_MAGIC = [
    (b"RIFF", ".wav", "audio/wav"),
    (b"fLaC", ".flac", "audio/flac"),
    (b"OggS", ".ogg", "audio/ogg"),
    (b"ID3", ".mp3", "audio/mpeg"),
    (b"\xff\xfb", ".mp3", "audio/mpeg"),
    (b"\xff\xf3", ".mp3", "audio/mpeg"),
]


def media_format(data: bytes, kind: str) -> tuple[str, str]:
    """(suffix, mime) from the first bytes of audio or video: servers do not always say what they sent."""
    if kind == "audio":
        for magic, suffix, mime in _AUDIO_MAGIC:
            if data.startswith(magic):
                return suffix, mime
        if data[4:8] == b"ftyp":
            return ".m4a", "audio/mp4"
    else:
        if data[4:8] == b"ftyp":
            return ".mp4", "video/mp4"
        if data.startswith(b"\x1aE\xdf\xa3"):
            return ".webm", "video/webm"
        if data.startswith(b"GIF8"):
            return ".gif", "image/gif"
    return ".bin", "application/octet-stream"


def save_media(data: bytes, kind: str, ctx: ExpertContext, text: str = "") -> Artifact:
    """Audio or video bytes saved under the suffix their content shows."""
    suffix, mime = media_format(data, kind)
    path = ctx.new_path(suffix)
    path.write_bytes(data)
    return Artifact(kind=kind, path=str(path), mime=mime, text=text or f"{kind} file ({len(data)} bytes)")  # type: ignore[arg-type]


def save_wave(samples: Any, rate: int, ctx: ExpertContext, text: str = "") -> Artifact:
    """Float samples (any shape with one channel) saved as 16-bit WAV."""
    import numpy as np
    import soundfile as sf

    samples = np.asarray(samples, dtype="float32").squeeze()
    path = ctx.new_path(".wav")
    sf.write(path, samples, int(rate), subtype="PCM_16")
    return Artifact(kind="audio", path=str(path), mime="audio/wav", text=text or f"speech ({len(samples) / rate:.1f} s)")


def _is_local_file(value: str) -> bool:
    return not value.startswith(("http://", "https://", "data:")) and Path(value).is_file()


def _box(item: Any) -> list[float] | None:
    box = field_of(item, "box")
    if box is None:
        return None
    coords = [field_of(box, k) for k in ("xmin", "ymin", "xmax", "ymax")]
    return [float(c) for c in coords] if all(isinstance(c, int | float) for c in coords) else None


def detection_artifacts(items: list[Any], image: str, ctx: ExpertContext) -> list[Artifact]:
    """Objects as data, its text a sentence for people ("2 objects: person, dog", read by a next task and the
    answer; labels with their scores and boxes stay in the data), and the image with the boxes drawn when
    it is a local file."""
    labels = [str(field_of(item, "label")) for item in items]
    summary = f"{len(items)} object{'' if len(items) == 1 else 's'}: " + ", ".join(labels) if items else "no object found"
    artifacts = [Artifact(kind="data", text=summary, data=plain(items))]
    if _is_local_file(image):
        from PIL import Image

        with Image.open(image) as opened:
            boxes = [{"box": _box(item), "label": field_of(item, "label"), "score": field_of(item, "score")}
                     for item in items if _box(item)]
            canvas = draw_boxes(opened, boxes)
        artifacts.append(save_image(canvas, ctx, text=f"the image with {len(items)} box(es) drawn"))
    return artifacts


def _mask_image(mask: Any):
    """A segment's mask as a PIL "L" image: transformers gives an image, the Inference API base64 PNG."""
    from PIL import Image

    if isinstance(mask, str):
        mask = Image.open(io.BytesIO(base64.b64decode(mask)))
    return mask.convert("L")


def segmentation_artifacts(items: list[Any], image: str, ctx: ExpertContext) -> list[Artifact]:
    """Each segment coloured over the image (or over black for a remote image), and the labels as data."""
    from PIL import Image

    masks = [_mask_image(field_of(i, "mask")) for i in items if field_of(i, "mask") is not None]
    labels = [{"label": field_of(i, "label"), "score": field_of(i, "score")} for i in items]
    artifacts = [labels_artifact(labels, limit=10)]
    if not masks:
        return artifacts
    if _is_local_file(image):
        with Image.open(image) as opened:
            base = opened.convert("RGB")
    else:
        base = Image.new("RGB", masks[0].size)
    overlay = base.copy()
    for i, segment in enumerate(masks):
        segment = segment.resize(base.size) if segment.size != base.size else segment
        colour = Image.new("RGB", base.size, PALETTE[i % len(PALETTE)])
        overlay = Image.composite(Image.blend(overlay, colour, 0.55), overlay, segment)
    artifacts.insert(0, save_image(overlay, ctx, text=f"{len(masks)} segment(s): {artifacts[0].text}"))
    return artifacts


# --------------------------------------------------------------------------------------------
# Tasks: registry slots → InferenceClient call → artifacts


def slot(inputs: dict[str, str], task: str, *names: str) -> str:
    """The first of `names` present in the inputs; a clear error naming the task when none is.

    Names are the registry's slot names; several only where a task outside the registry (zero-shot,
    served by endpoints) takes the Inference API's own name too.
    """
    for name in names:
        value = inputs.get(name)
        if value not in (None, ""):
            return value
    raise ExpertError(f"{task} needs the argument {names[0]!r}")


def read_table(value: str) -> dict[str, list[str]]:
    """A table as columns, from a CSV or JSON file (records or columns) or such text."""
    text = Path(value).read_text(encoding="utf-8") if _is_local_file(value) else value
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        data = json.loads(stripped)
        if isinstance(data, dict):
            return {str(k): [str(v) for v in (vals if isinstance(vals, list) else [vals])] for k, vals in data.items()}
        rows = [r for r in data if isinstance(r, dict)]
    else:
        rows = list(csv.DictReader(io.StringIO(stripped)))
    columns: dict[str, list[str]] = {}
    for row in rows:
        for key, val in row.items():
            columns.setdefault(str(key), []).append(str(val))
    if not columns:
        raise ExpertError("tabular-classification needs a table (a CSV or JSON file), not an image")
    return columns


_LANG_CODE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$")

Runner = Callable[["InferenceClient", str, dict[str, str], ExpertContext], list[Artifact]]


def _image_to_image(c: InferenceClient, m: str, i: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    prompt = i.get("text") or None
    return [save_image(c.image_to_image(slot(i, ctx.task, "image"), prompt=prompt, model=m), ctx)]


def _translation(c: InferenceClient, m: str, i: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    language = (i.get("language") or "").strip()
    kwargs = {"tgt_lang": language} if _LANG_CODE.match(language) else {}  # names like "French" stay in the model id
    out = c.translation(slot(i, ctx.task, "text"), model=m, **kwargs)
    return [text_artifact(field_of(out, "translation_text", ""))]


def _similarity(c: InferenceClient, m: str, i: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    scores = c.sentence_similarity(slot(i, ctx.task, "text1"), [slot(i, ctx.task, "text2")], model=m)
    score = float(scores[0]) if scores else float("nan")
    return [Artifact(kind="data", text=f"similarity {score:.2f}", data={"similarity": round(score, 6)})]


def _zero_shot(c: InferenceClient, m: str, i: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    labels = [s.strip() for s in slot(i, ctx.task, "labels", "candidate_labels").split(",") if s.strip()]
    if ctx.task == "zero-shot-image-classification":
        return [labels_artifact(c.zero_shot_image_classification(slot(i, ctx.task, "image"), labels, model=m))]
    return [labels_artifact(c.zero_shot_classification(slot(i, ctx.task, "text"), labels, model=m))]


def _audio_to_audio(c: InferenceClient, m: str, i: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    outputs = c.audio_to_audio(slot(i, ctx.task, "audio"), model=m)
    return [save_media(field_of(o, "blob"), "audio", ctx, text=f"audio: {field_of(o, 'label')}") for o in outputs]


def _tabular(c: InferenceClient, m: str, i: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    # The registry's slot is `image` (HuggingGPT's vocabulary: "a table given as an image"); the Inference
    # API classifies a table, so the slot must hold a CSV or JSON table (`read_table` says so otherwise).
    predictions = c.tabular_classification(read_table(slot(i, ctx.task, "image")), model=m)
    return [Artifact(kind="data", text=", ".join(map(str, predictions)), data=plain(predictions))]


def _chat(c: InferenceClient, m: str, i: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
    out = c.chat_completion([{"role": "user", "content": slot(i, ctx.task, "text")}], model=m, max_tokens=400)
    return [text_artifact(out.choices[0].message.content or "")]


#: Every task the Inference API speaks, as a function of (client, model, inputs, context).
TASKS: dict[str, Runner] = {
    "image-to-text": lambda c, m, i, ctx: [
        text_artifact(field_of(c.image_to_text(slot(i, ctx.task, "image"), model=m), "generated_text", ""))
    ],
    "object-detection": lambda c, m, i, ctx: detection_artifacts(
        c.object_detection(slot(i, ctx.task, "image"), model=m), i["image"], ctx
    ),
    "image-classification": lambda c, m, i, ctx: [labels_artifact(c.image_classification(slot(i, ctx.task, "image"), model=m))],
    "image-segmentation": lambda c, m, i, ctx: segmentation_artifacts(
        c.image_segmentation(slot(i, ctx.task, "image"), model=m), i["image"], ctx
    ),
    "text-to-image": lambda c, m, i, ctx: [save_image(c.text_to_image(slot(i, ctx.task, "text"), model=m), ctx)],
    "image-to-image": _image_to_image,
    "visual-question-answering": lambda c, m, i, ctx: [
        answer_artifact(c.visual_question_answering(slot(i, ctx.task, "image"), slot(i, ctx.task, "text"), model=m))
    ],
    "document-question-answering": lambda c, m, i, ctx: [
        answer_artifact(c.document_question_answering(slot(i, ctx.task, "image"), slot(i, ctx.task, "text"), model=m))
    ],
    "automatic-speech-recognition": lambda c, m, i, ctx: [
        text_artifact(field_of(c.automatic_speech_recognition(slot(i, ctx.task, "audio"), model=m), "text", ""))
    ],
    "text-to-speech": lambda c, m, i, ctx: [save_media(c.text_to_speech(slot(i, ctx.task, "text"), model=m), "audio", ctx)],
    "audio-classification": lambda c, m, i, ctx: [labels_artifact(c.audio_classification(slot(i, ctx.task, "audio"), model=m))],
    "audio-to-audio": _audio_to_audio,
    "translation": _translation,
    "summarization": lambda c, m, i, ctx: [
        text_artifact(field_of(c.summarization(slot(i, ctx.task, "text"), model=m), "summary_text", ""))
    ],
    "question-answering": lambda c, m, i, ctx: [
        answer_artifact(c.question_answering(slot(i, ctx.task, "text"), slot(i, ctx.task, "context"), model=m))
    ],
    "token-classification": lambda c, m, i, ctx: [
        entities_artifact(c.token_classification(slot(i, ctx.task, "text"), model=m))
    ],
    "text-classification": lambda c, m, i, ctx: [labels_artifact(c.text_classification(slot(i, ctx.task, "text"), model=m))],
    "sentence-similarity": _similarity,
    "zero-shot-classification": _zero_shot,
    "zero-shot-image-classification": _zero_shot,
    "tabular-classification": _tabular,
    "text-to-video": lambda c, m, i, ctx: [save_media(c.text_to_video(slot(i, ctx.task, "text"), model=m), "video", ctx)],
    # for endpoints (TGI, vLLM); on `hf` the controller LLM writes text (as in the paper)
    "text-generation": lambda c, m, i, ctx: [
        text_artifact(c.text_generation(slot(i, ctx.task, "text"), model=m, max_new_tokens=400))
    ],
    "conversational": _chat,
}
#: Generative text tasks `hf` leaves to the controller LLM (old catalogue models like gpt2 are rarely served).
LLM_TEXT_TASKS = ("text-generation", "conversational")


# --------------------------------------------------------------------------------------------
# Errors: what the executor should do about them


_NOT_SERVED = re.compile(
    r"not supported|no provider mapping|doesn't support|does not support|not available|is not served|"
    r"no inference provider|not deployed|stopiteration",
    re.IGNORECASE,
)


def server_message(exc: BaseException) -> str:
    """What the server said (huggingface_hub extracts it), else the exception text."""
    message = getattr(exc, "server_message", None)
    if not message:
        response = getattr(exc, "response", None)
        try:
            message = response.text if response is not None else ""
        except Exception:  # a streamed body that was never read
            message = ""
    message = message or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:300]


def classify_error(
    exc: BaseException,
    *,
    where: str,
    tries: int,
    timeout: float,
    per_model_hosts: bool = False,
    secrets: Iterable[Secret | str | None] = (),
    auth_hint: str = "",
) -> ExpertError:
    """The `ExpertError` for an exception from the client, its message masked.

    `per_model_hosts`: each model has its own host and credentials (endpoints), so a refused token or a
    dead host is that model's failure; with one host and one token for all (`hf`) it is everyone's.
    """

    def clean(text: str) -> str:
        return mask_secrets(text, *secrets)

    names = {cls.__name__ for cls in type(exc).__mro__}
    status = http_status(exc)
    said = server_message(exc)
    after = f" after {tries} tries" if tries > 1 else ""
    if "OfflineModeIsEnabled" in names:
        return ExpertError(clean(f"{where}: HF_HUB_OFFLINE=1 blocks remote calls; unset it to use remote experts"))
    if "GatedRepoError" in names:
        return ExpertError(clean(f"{where}: gated model; accept its terms on its Hub page ({said})"), model_level=True)
    if "RepositoryNotFoundError" in names:
        return ExpertError(clean(f"{where}: model not found on the Hub (HTTP {status})"), model_level=True)
    if status in (401, 403):
        return AuthError(clean(f"{where}: the server refused the token (HTTP {status}: {said}). {auth_hint}"),
                         model_level=per_model_hosts)
    if status in (404, 410):
        return ExpertError(clean(f"{where}: model not available (HTTP {status}: {said})"), model_level=True)
    if status == 429:
        return ExpertError(clean(f"{where}: rate limited (HTTP 429){after}: {said}"))
    if status is not None and status >= 500:
        return ExpertError(clean(f"{where}: server error (HTTP {status}){after}: {said}"), model_level=True)
    if status is not None and _NOT_SERVED.search(said):
        return ExpertError(clean(f"{where}: not served here (HTTP {status}: {said})"), model_level=True)
    if status is not None:
        return ExpertError(clean(f"{where}: the server rejected the input (HTTP {status}: {said})"))
    if "InferenceTimeoutError" in names or "TimeoutException" in names or isinstance(exc, TimeoutError):
        return ExpertError(clean(f"{where}: no answer within {timeout:g} s"), model_level=True)
    if is_connection_error(exc):
        return ExpertError(
            clean(f"{where}: cannot connect{after} ({type(exc).__name__}: {said})"),
            model_level=per_model_hosts,
        )
    if isinstance(exc, ValueError | StopIteration | KeyError) and _NOT_SERVED.search(f"{type(exc).__name__} {said}"):
        return ExpertError(clean(f"{where}: not served by this provider ({said})"), model_level=True)
    return ExpertError(clean(f"{where}: {type(exc).__name__}: {said}"))


# --------------------------------------------------------------------------------------------
# Backends


class InferenceClientExperts(ExpertBackend):
    """What `hf` and `endpoint` share: the task table, retries, the semaphore and error mapping.

    Subclasses say where a (task, model) goes: `_target(task, model) -> (client kwargs, model argument)`.
    A client is made per call so that no long-lived object holds the token in the clear.
    """

    offline = False
    #: Whether a connection failure or refused credentials concern one model (its own URL and token)
    #: or the whole backend.
    per_model_hosts = False
    #: What to tell the user when the credentials are refused.
    auth_hint = ""

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        tasks: Iterable[str] | None = None,
    ):
        self.policy = policy or default_policy()
        self.max_concurrency = max_concurrency or default_concurrency()
        self.tasks = [t for t in (tasks or TASKS) if t in TASKS]
        self._slots = Slots(self.max_concurrency)
        self._auth_errors: dict[str | None, AuthError] = {}
        self._lock = threading.Lock()
        #: Counters for display and tests: calls, retries, failures.
        self.stats = {"calls": 0, "retries": 0, "failures": 0}

    # subclasses --------------------------------------------------------------

    def _target(self, task: str, model: str) -> tuple[dict[str, Any], str]:
        raise NotImplementedError

    def _secrets(self) -> list[Secret | str | None]:
        return []

    def _credentials_key(self, task: str, model: str) -> str | None:
        """What a refused token is remembered for: the whole backend (None) or one endpoint."""
        return None

    # the interface -----------------------------------------------------------

    def run(self, task: str, model: str, inputs: dict[str, str], ctx: ExpertContext) -> list[Artifact]:
        refused = self._auth_errors.get(self._credentials_key(task, model))
        if refused is not None:  # fail fast: the same credentials would be refused again
            raise AuthError(str(refused), model_level=refused.model_level)
        runner = TASKS.get(task)
        if runner is None or task not in self.tasks:
            raise ExpertError(f"{self.name} does not run {task}", model_level=True)
        client_kwargs, model_arg = self._target(task, model)
        where = f"{self.name} {model}"
        tries = 0

        def call() -> list[Artifact]:
            nonlocal tries
            tries += 1
            from huggingface_hub import InferenceClient

            client = InferenceClient(timeout=self.policy.timeout, **client_kwargs)
            try:
                return runner(client, model_arg, inputs, ctx)
            finally:
                client.close()

        def note_retry(number: int, exc: BaseException, delay: float) -> None:
            with self._lock:
                self.stats["retries"] += 1
            status = http_status(exc)
            log.warning("%s: %s; retry %d in %.1f s", where, f"HTTP {status}" if status else type(exc).__name__,
                        number, delay)

        if not self._slots.acquire(ctx.cancel):
            raise ExpertError(f"{where}: cancelled while waiting for a free slot")
        try:
            with self._lock:
                self.stats["calls"] += 1
            return retry_with(self.policy, call, retryable=is_transient, cancel=ctx.cancel, on_retry=note_retry)
        except ExpertError:
            raise
        except Exception as exc:
            error = classify_error(
                exc,
                where=where,
                tries=tries,
                timeout=self.policy.timeout,
                per_model_hosts=self.per_model_hosts,
                secrets=self._secrets(),
                auth_hint=self.auth_hint,
            )
            with self._lock:
                self.stats["failures"] += 1
                if isinstance(error, AuthError):
                    self._auth_errors[self._credentials_key(task, model)] = error
            log.info("%s", error)
            raise error from None  # the original may carry request headers: keep it out of tracebacks
        finally:
            self._slots.release()

    def reset(self) -> None:
        """Forget remembered auth failures (after the user fixed the token)."""
        self._auth_errors.clear()


#: Model ids that belong to other backends and never to the Hub.
_HUB_ID = re.compile(r"^[\w.\-]+(/[\w.\-]+)?$")


def is_hub_id(model: str) -> bool:
    return bool(_HUB_ID.match(model)) and not model.startswith(NOT_HUB_PREFIXES)


class HFExperts(InferenceClientExperts):
    """Hugging Face Inference Providers (spec `hf`, or `hf:PROVIDER` to pin one such as `hf-inference`).

    Serves every catalogue model of a task in `TASKS` when a token is present (HF_TOKEN or `hf auth login`);
    whether a provider really serves the model is learnt when it runs, and a "no" falls back to the next
    candidate. No network call happens at selection time.
    """

    name = "hf"
    auth_hint = (
        f"Set HF_TOKEN to a valid token that may 'Make calls to Inference Providers' ({TOKENS_URL}), "
        "or run `hf auth login`."
    )

    def __init__(
        self,
        provider: str | None = None,
        *,
        token: str | None = None,
        policy: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        tasks: Iterable[str] | None = None,
    ):
        tasks = tasks if tasks is not None else [t for t in TASKS if t not in LLM_TEXT_TASKS]
        super().__init__(policy=policy, max_concurrency=max_concurrency, tasks=tasks)
        self.provider = provider or None
        value = token if token is not None else hf_token()
        self._token = Secret(value) if value else None
        self.token_source = "argument" if token is not None else hf_token_source()

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def can_serve(self, task: str, model: str) -> bool:
        return self.has_token and task in self.tasks and is_hub_id(model)

    def _target(self, task: str, model: str) -> tuple[dict[str, Any], str]:
        if self._token is None:
            raise AuthError(f"hf: no Hugging Face token; set HF_TOKEN or run `hf auth login` ({TOKENS_URL})")
        return {"provider": self.provider, "token": self._token.reveal()}, model

    def _secrets(self) -> list[Secret | str | None]:
        return [self._token]

    def describe(self) -> str:
        """One line for `%hugginggpt config` and the CLI (the token masked)."""
        token = f"token {mask(self._token)} from {self.token_source}" if self._token else "no token"
        return f"hf: Inference Providers, provider {self.provider or 'auto'}, {token}"

    def __repr__(self) -> str:
        return f"HFExperts(provider={self.provider!r}, token={mask(self._token)!r})"


__all__ = [
    "AuthError",
    "HFExperts",
    "InferenceClientExperts",
    "TASKS",
    "classify_error",
    "is_hub_id",
]
