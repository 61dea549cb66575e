"""Where mmif finds the real development data."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["find_data_root", "DATA_ENV_VAR"]

DATA_ENV_VAR = "MMIF_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def find_data_root() -> Path | None:
    """Return the folder that holds ``harvard/`` and ``volumes/``, or ``None`` when there is none.

    Looks at ``$MMIF_DATA`` first, then ``../shared/data`` beside the repository checkout, then beside the current
    directory.
    """
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    for base in (_REPO_ROOT, Path.cwd()):
        p = base.parent / "shared" / "data"
        if p.is_dir():
            return p
    return None
