"""The ``trtforge`` command: argument parsing only; every subcommand calls the library.

A :class:`~trtforge.errors.TrtforgeError` becomes one line on stderr and its exit code
(2 for bad input); any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from trtforge import __version__
from trtforge._files import process_scratch
from trtforge.errors import TrtforgeError

# Subcommand name -> module under trtforge.cli with add_parser(subparsers) and run(args) -> int.
SUBCOMMANDS = {
    "convert": "convert",
    "reshape": "reshape",
    "build": "build",
    "bench": "bench",
    "inspect": "inspect",
    "exec": "trtexec",
    "deploy": "deploy",
    "run": "run",
    "compare": "compare",
    "export": "export",
    "serve": "serve",
    "sensitivity": "sensitivity",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors print usage first; ours are one line, same exit code.
        raise TrtforgeError(f"{self.prog}: {message} (see {self.prog} --help)")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trtforge", description="From a trained model to a validated, benchmarked engine.")
    parser.add_argument("--version", action="version", version=f"trtforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in SUBCOMMANDS.items():
        importlib.import_module(f"trtforge.cli.{module}").add_parser(sub, name)
    return parser


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:  # type: ignore[no-untyped-def]
    print(f"trtforge: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if code == 130 and argv is None:
        # Handled: leave with the status we said, now. CPython ends a run whose KeyboardInterrupt it
        # believes unhandled by killing itself with SIGINT (status -2); a fresh-clone CI run once saw
        # -2 after "interrupted" was printed. Cleanup has run (the scratch folder is gone).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.showwarning = _warning_line
    sigint = _SigInt()
    try:
        with process_scratch():
            return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BaseException as exc:
        sigint.armed = False
        # Ctrl-C can land anywhere: inside a lazy import (an ImportError follows) or native code
        # (ONNX Runtime then fails "initialization", which reads as a user error): after a SIGINT,
        # whatever escapes is the interruption.
        if not (sigint.seen or isinstance(exc, KeyboardInterrupt)):
            if isinstance(exc, TrtforgeError):
                print(f"trtforge: error: {exc}", file=sys.stderr)
                return exc.exit_code
            raise
        print("trtforge: interrupted", file=sys.stderr)
        return 130
    finally:
        # As the program (no argv), its work done: a Ctrl-C while the interpreter shuts down
        # would only kill it by the signal, silently; ignore it. In process: put things back.
        sigint.close(ignore_from_now=argv is None)


def _dispatch(argv: list[str]) -> int:
    parser = make_parser()
    if argv[:1] == ["exec"] and not {"-h", "--help"} & set(argv[1:]):
        # trtexec's flags are not argparse's: hand them over untouched.
        from trtforge.cli import trtexec

        args = argparse.Namespace(command="exec", flags=argv[1:], run=trtexec.run)
    else:
        args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


class _SigInt:
    """Notes every SIGINT; the first raises KeyboardInterrupt (as Python's own handler does), later
    ones (while the error is reported and temporaries removed) do not interrupt the cleanup."""

    def __init__(self) -> None:
        self.seen, self.armed, self.previous = 0, True, None
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) not in (
            signal.SIG_IGN,
            None,
        ):  # else not ours to catch (another thread), or ignored on purpose (nohup)
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: object) -> None:
        self.seen += 1
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def close(self, ignore_from_now: bool) -> None:
        self.armed = False
        if self.previous is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_from_now else self.previous)


if __name__ == "__main__":
    sys.exit(main())
