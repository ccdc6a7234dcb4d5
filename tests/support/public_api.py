"""One check for every package's pinned public names (``__all__``)."""

from __future__ import annotations

import importlib


def check_public_names(module: str, expected: list[str]) -> None:
    """``module.__all__`` is exactly ``expected`` and every name in it exists."""
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(expected)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, missing
