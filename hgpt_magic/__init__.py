"""hgpt-magic: HuggingGPT (plan, select, execute, respond) as a Python library and a Jupyter magic.

Importing this package is cheap: no model is loaded and no ML library is imported until a stage runs.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Names importable from the package itself, and the module each lives in (imported on first use).
_LAZY = {
    "HuggingGPT": "pipeline",
    "Plan": "types",
    "Task": "types",
    "Run": "types",
    "PlanError": "planning",
    "make_llm": "llm",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    """`from hgpt_magic import HuggingGPT` imports the pipeline then, not at package import."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """`%load_ext hgpt_magic`: registers `%%hugginggpt` and `%hugginggpt`.

    The magic module (and ipywidgets with it) is imported here, not at package import.
    """
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magic import unload_ipython_extension as unload

    unload(ipython)
