"""The model catalogue: Hugging Face model cards per task, ranked by downloads.

A snapshot ships inside the package (`data/catalog.jsonl`, built by `scripts/build_catalog.py` from
the 673 cards HuggingGPT selected from); backends add the models they bring themselves (local ones).
`hugginggpt catalog refresh` rebuilds it from the Hub (`refresh_cards`) into the user data folder, and
from then on that file is the default; `$HGPT_CATALOG` names another file. Offline, nothing changes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCard:
    id: str
    task: str
    downloads: int = 0
    likes: int = 0
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    license: str | None = None
    #: The backend that brings this model (local models); None for hub models.
    backend: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        data = dict(data)
        data["tags"] = tuple(data.get("tags") or ())
        return cls(**data)


def load_cards(path: str | Path | None = None) -> list[ModelCard]:
    """The cards in a catalogue file (JSON lines); the shipped snapshot by default."""
    if path is None:
        text = resources.files("hgpt_magic").joinpath("data/catalog.jsonl").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return [ModelCard.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]


@lru_cache(maxsize=1)
def shipped_cards() -> tuple[ModelCard, ...]:
    return tuple(load_cards())


def user_catalog_path() -> Path:
    """Where `catalog refresh` writes: `$HGPT_CATALOG`, else `catalog.jsonl` in the user data folder."""
    if settings.CATALOG.is_set():
        return settings.CATALOG.path()
    from platformdirs import user_data_dir

    return Path(user_data_dir("hgpt-magic")) / "catalog.jsonl"


def default_cards() -> tuple[list[ModelCard], str]:
    """The catalogue in use and where it comes from: a refreshed file when there is one, else the snapshot."""
    path = user_catalog_path()
    if path.is_file():
        try:
            return load_cards(path), str(path)
        except (OSError, ValueError, TypeError) as exc:  # a damaged file must not stop the pipeline
            log.warning("ignoring the catalogue %s (%s); using the shipped snapshot", path, exc)
    return list(shipped_cards()), "shipped snapshot"


def save_cards(cards: Iterable[ModelCard], path: str | Path) -> Path:
    """Write cards as JSON lines, atomically (a crash mid-write leaves the old file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in cards), encoding="utf-8")
    tmp.replace(path)
    return path


class CatalogRefreshError(RuntimeError):
    """The Hub could not be asked (offline, unreachable, refused); the catalogue in use is unchanged."""


#: Registry tasks with no Hub pipeline tag of their own.
NOT_ON_HUB = ("canny-control",)


def _describe(info: Any) -> str:
    """A short description from a model's tags, for models the shipped snapshot has no card text for."""
    tags = list(getattr(info, "tags", None) or [])
    languages = [t for t in tags if len(t) == 2 and t.isalpha()]
    datasets = [t.split(":", 1)[1] for t in tags if t.startswith("dataset:")]
    parts = [f"{getattr(info, 'library_name', None) or 'Hub'} model for {getattr(info, 'pipeline_tag', None) or 'its task'}"]
    if languages:
        parts.append("languages " + ", ".join(languages[:6]))
    if datasets:
        parts.append("trained on " + ", ".join(datasets[:3]))
    return "; ".join(parts) + "."


def _probe(api: Any, timeout: float = 10.0) -> None:
    """One quick request without retries, so that no network fails in a second, not after the
    client's half-minute of backoff."""
    from huggingface_hub.utils import get_session

    endpoint = getattr(api, "endpoint", None)
    if not endpoint:
        return
    try:
        get_session().get(f"{endpoint}/api/models", params={"limit": 1}, timeout=timeout)
    except Exception as exc:
        from .secrets import mask_secrets

        raise CatalogRefreshError(
            f"cannot reach the Hub at {endpoint} ({mask_secrets(f'{type(exc).__name__}: {exc}')})"
        ) from None


def refresh_cards(
    tasks: Iterable[str],
    *,
    per_task: int = 30,
    served_only: bool = False,
    api: Any = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[ModelCard], list[str]]:
    """Rebuild the catalogue from the Hub: per task, the `per_task` most downloaded models with its pipeline tag.

    `served_only` keeps models that some Inference Provider serves. A task the Hub returns nothing for
    keeps its snapshot cards (the notes say which). Raises `CatalogRefreshError` when offline or unreachable.
    """
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise CatalogRefreshError("offline (HF_HUB_OFFLINE is set): the catalogue was not refreshed")
    api = api or HfApi()
    _probe(api)
    shipped = {(c.id, c.task): c for c in shipped_cards()}
    cards: list[ModelCard] = []
    notes: list[str] = []
    for task in tasks:
        if task in NOT_ON_HUB:
            continue
        try:
            infos = list(
                api.list_models(
                    pipeline_tag=task,
                    sort="downloads",
                    limit=per_task,
                    inference_provider="all" if served_only else None,
                    expand=["downloads", "likes", "tags", "pipeline_tag", "library_name"],
                )
            )
        except Exception as exc:
            from .secrets import mask_secrets

            raise CatalogRefreshError(
                f"cannot list {task} models on the Hub at {getattr(api, 'endpoint', '?')}: "
                f"{mask_secrets(f'{type(exc).__name__}: {exc}')}"
            ) from None
        if not infos:
            kept = [c for (_, t), c in shipped.items() if t == task]
            cards += kept
            notes.append(f"{task}: the Hub listed no model; kept the {len(kept)} snapshot card(s)")
            continue
        for info in infos:
            old = shipped.get((info.id, task))
            tags = tuple(getattr(info, "tags", None) or ())
            license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
            cards.append(
                ModelCard(
                    id=info.id,
                    task=task,
                    downloads=int(getattr(info, "downloads", 0) or 0),
                    likes=int(getattr(info, "likes", 0) or 0),
                    description=old.description if old else _describe(info),
                    tags=tags[:12],
                    license=license_ or (old.license if old else None),
                )
            )
        if progress:
            progress(f"{task}: {len(infos)} model(s)")
    return cards, notes


class Catalog:
    """Model cards by task, with ranking (downloads, most first). No cards given: `default_cards()`."""

    def __init__(self, cards: list[ModelCard] | tuple[ModelCard, ...] | None = None):
        self.cards = list(default_cards()[0] if cards is None else cards)

    def with_cards(self, extra: list[ModelCard]) -> Catalog:
        known = {(c.id, c.task) for c in self.cards}
        return Catalog(self.cards + [c for c in extra if (c.id, c.task) not in known])

    def for_task(self, task: str) -> list[ModelCard]:
        # Stable: cards with equal counts (local models have none) keep the order their backend lists them
        # in, which puts its default first (piper before espeak-ng), not the alphabet's.
        return sorted((c for c in self.cards if c.task == task), key=lambda c: (-c.downloads, -c.likes))

    def get(self, model_id: str, task: str | None = None) -> ModelCard | None:
        for card in self.cards:
            if card.id == model_id and (task is None or card.task == task):
                return card
        return None

    def tasks(self) -> list[str]:
        return sorted({c.task for c in self.cards})
