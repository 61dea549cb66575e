"""Errors that mmif reports to its users."""

from __future__ import annotations

import os

__all__ = ["InputError"]


class InputError(ValueError):
    """A problem with user input (a file, a folder, a datalist) that the user can fix.

    The message is one line, ``"<path>: <problem>"``, so that it reads well when the CLI prints it without a traceback.

    Args:
        path: the file or folder at fault (``None`` when the problem is not tied to one file).
        problem: what is wrong with it, in words a user understands.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")
