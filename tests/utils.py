"""Shared test helpers."""

from __future__ import annotations

import unittest
from pathlib import Path

from mmif.data import DATA_ENV_VAR, find_data_root

__all__ = ["data_root", "skip_unless_data", "REPO_ROOT", "reference_root"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_SKIP_REASON = f"real data not found: set {DATA_ENV_VAR} or place the shared folder at ../shared/data beside the repo"


def data_root() -> Path | None:
    return find_data_root()


def reference_root() -> Path | None:
    """``shared/reference`` beside ``shared/data`` (the metric reference values), or ``None``."""
    root = find_data_root()
    if root is None:
        return None
    ref = root.parent / "reference"
    return ref if (ref / "metrics.json").is_file() else None


def skip_unless_data(sub: str = ""):
    """Skip a test (or class) unless the real data (optionally a sub-folder of it) is present."""
    root = find_data_root()
    ok = root is not None and (root / sub).exists()
    return unittest.skipUnless(ok, _SKIP_REASON + (f" (needs {sub})" if sub else ""))
