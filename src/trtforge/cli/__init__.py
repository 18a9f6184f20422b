"""The ``trtforge`` command: argument parsing only; every subcommand calls the library.

A :class:`~trtforge.errors.TrtforgeError` becomes one line on stderr and its exit code
(2 for bad input); any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from trtforge import __version__
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.showwarning = _warning_line
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
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
    except TrtforgeError as exc:
        print(f"trtforge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("trtforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
