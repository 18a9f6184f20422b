"""``trtforge exec``: trtexec's flags, mapped onto trtforge's build and bench.

:mod:`~trtforge.cli.trtexec.flags` holds the flag table and the parse; :mod:`~trtforge.cli.trtexec.execute`
turns an :class:`~trtforge.cli.trtexec.flags.ExecRequest` into library calls.
"""

from __future__ import annotations

import argparse
import sys

from trtforge.cli.trtexec.flags import FLAGS, parse


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    lines = [f"  --{n}{'=VALUE' if f.takes_value else ''}: {f.help}" for n, f in FLAGS.items()]
    p = sub.add_parser(
        name,
        help="trtexec-compatible front: build and benchmark with trtexec's flags",
        description="Accepts trtexec's flags (--flag=value) and maps them onto "
        "trtforge build + bench.\n\nflags:\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=True,
    )
    p.add_argument("flags", nargs=argparse.REMAINDER, help="trtexec flags")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trtforge.cli.trtexec.execute import execute

    return execute(parse(args.flags), out=sys.stdout)
