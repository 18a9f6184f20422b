"""One exception family for mistakes a user can fix.

The CLI turns a :class:`TrtforgeError` into one line on stderr and exit code 2.  Anything
else that escapes is a bug in trtforge and keeps its traceback.
"""

from __future__ import annotations


class TrtforgeError(Exception):
    """A user error: bad path, bad option string, unsupported model or data.

    The message names what was given, what was expected, and what to do instead.
    """

    exit_code = 2


class MissingDependencyError(TrtforgeError):
    """An optional dependency is not installed; the message carries the pip command."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{module}', which is not installed; "
            f"install it with: pip install 'trtforge[{extra}]'"
        )
        self.module = module
        self.extra = extra


class VerificationError(TrtforgeError):
    """A result was produced but failed its numerical check (exit code 1, as for a failed test)."""

    exit_code = 1


def require(module: str, extra: str, purpose: str):  # -> types.ModuleType
    """Import an optional dependency or raise :class:`MissingDependencyError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the package is there but broken: a real bug, keep the traceback
        raise MissingDependencyError(module, extra, purpose) from None
