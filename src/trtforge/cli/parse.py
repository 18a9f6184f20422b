"""The CLI's string parsers, shared by every subcommand and by ``exec``: one parse per kind of string.

Each returns a typed value or raises a one-line :class:`~trtforge.errors.TrtforgeError` naming the flag.
"""

from __future__ import annotations

import argparse

from trtforge.errors import TrtforgeError

MEMORY_POOLS = ("workspace", "tacticSharedMem", "dlaSRAM", "dlaLocalDRAM", "dlaGlobalDRAM")


def names(text: str | None) -> tuple[str, ...]:
    """``a,b , c`` -> ``("a", "b", "c")``; empty items are dropped."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def mib(text: str, flag: str) -> int:
    """trtexec's pool sizes in bytes: a number in MiB, or with a suffix K/M/G (KiB/MiB/GiB)."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    text = text.strip().lower()
    scale = units.get(text[-1:])
    number = text[:-1] if scale is not None else text
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise TrtforgeError(f"{flag}: {text!r} is not a size (MiB, or with K/M/G)") from None
    if not 0 < value < float(1 << 40):  # also refuses nan and inf
        raise TrtforgeError(f"{flag}: the size must be positive and finite, got {text!r}")
    return int(value * (1 << 20))


def mem_pools(text: str | None, flag: str, workspace_mib: float | None = None) -> tuple[tuple[str, int], ...]:
    """``workspace:1G,tacticSharedMem:48K`` -> ((pool, bytes), ...); ``workspace_mib`` is --workspace."""
    pools: dict[str, int] = {}
    if workspace_mib is not None:
        pools["workspace"] = mib(str(workspace_mib), "--workspace")
    for item in names(text):
        name, sep, size = item.partition(":")
        if not sep or name.strip() not in MEMORY_POOLS:
            raise TrtforgeError(
                f"{flag}: bad item {item!r}; expected POOL:SIZE with POOL one of {', '.join(MEMORY_POOLS)}"
            )
        pools[name.strip()] = mib(size, flag)
    return tuple(pools.items())


def percentiles(text: str, flag: str = "--percentile") -> tuple[float, ...]:
    """``90,95,99`` -> (90.0, 95.0, 99.0), each in [0, 100]."""
    try:
        values = tuple(float(x) for x in names(text))
    except ValueError:
        raise TrtforgeError(f"bad {flag} {text!r}: expected numbers like 90,95,99") from None
    if not values:
        raise TrtforgeError(f"empty {flag}: give numbers like 90,95,99")
    bad = [v for v in values if not 0.0 <= v <= 100.0]
    if bad:
        raise TrtforgeError(f"bad percentile {bad[0]:g} in {flag}: expected a number from 0 to 100")
    return values


def add_equalize_flag(group: argparse._ActionsContainer) -> None:
    """``--no-equalize``: build, deploy and sensitivity share it."""
    group.add_argument(
        "--no-equalize",
        dest="equalize",
        action="store_false",
        help="leave the channels a depthwise Conv reads as trained (default: scale each producer Conv channel up "
        "and the depthwise weights down so one INT8 activation scale fits every channel; outputs checked unchanged)",
    )


def add_reduce_range_flag(group: argparse._ActionsContainer) -> None:
    """``--reduce-range``: build and deploy share it."""
    group.add_argument(
        "--reduce-range",
        action="store_true",
        help="INT8 for ONNX Runtime CPU with 7-bit weights even where this CPU has VNNI, so the engine also runs on "
        "CPUs without it (default: 8-bit with VNNI, which such CPUs refuse; 7-bit where this CPU lacks it)",
    )


def add_bias_correction_flags(group: argparse._ActionsContainer, measured: bool = True) -> None:
    """``--no-bias-correction`` (and ``--no-measured-bias-correction``): build, deploy and sensitivity share them."""
    group.add_argument(
        "--no-bias-correction",
        dest="bias_correction",
        action="store_false",
        help="keep the biases as trained (default: shift each Conv/Gemm bias by the mean error its INT8 weights cause)",
    )
    if measured:
        group.add_argument(
            "--no-measured-bias-correction",
            dest="empirical_bias_correction",
            action="store_false",
            help="skip the second, measured bias correction (default: each Conv/Gemm bias also shifted by the mean "
            "error its quantized input adds, measured on up to 64 calibration samples)",
        )
