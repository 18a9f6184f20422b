"""One strict parser for every number a user types: flags, shape strings, ``--preprocess`` values.

Python's ``int``/``float`` take more than a user means: ``"²"`` and other Unicode digits,
``"1_000"``, 5,000-digit integers, ``"nan"``, ``"inf"`` and ``"1e400"`` (which is inf).  Here a
number is ASCII digits (a sign, a point, an exponent and a fraction ``A/B`` where allowed), finite,
and within the range the caller gives; anything else is one :class:`TrtforgeError` naming the flag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from trtforge.errors import TrtforgeError

MAX_DIGITS = 30
"""No number a user means has more digits; longer text is refused before any conversion."""
LARGEST_DIM = 1 << 31
"""The largest tensor dimension (and batch) trtforge accepts."""
SEED_MAX = (1 << 32) - 1  # numpy's seeds

_INT = re.compile(r"[+-]?[0-9]+")
_REAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?")


def _range_words(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}" if not low_open else f"above {low:g} and at most {high:g}"
    if low is not None:
        return f"above {low:g}" if low_open else f"at least {low:g}"
    return f"at most {high:g}" if high is not None else "finite"


def integer(text: str | int, flag: str, low: int | None = None, high: int | None = None) -> int:
    """``text`` as an int of ASCII digits within [low, high], or a user error naming ``flag``."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise TrtforgeError(f"{flag}: expected an integer, got {text!r}")
    stripped = text.strip() if isinstance(text, str) else str(text)
    if len(stripped) > MAX_DIGITS or not _INT.fullmatch(stripped):
        raise TrtforgeError(f"{flag}: {_shown(text)} is not an integer (ASCII digits, e.g. 8)")
    value = int(stripped)
    if (low is not None and value < low) or (high is not None and value > high):
        raise TrtforgeError(f"{flag}: {value} is out of range; expected an integer {_range_words(low, high)}")
    return value


def real(
    text: str | float,
    flag: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    fraction: bool = False,
) -> float:
    """``text`` as a finite float within the range (``A/B`` too with ``fraction``), or a user error."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise TrtforgeError(f"{flag}: expected a number, got {text!r}")
    if isinstance(text, str):
        stripped = text.strip()
        top, slash, bottom = stripped.partition("/")
        if slash and fraction:
            divisor = real(bottom, flag)
            if divisor == 0:
                raise TrtforgeError(f"{flag}: {_shown(text)} divides by zero")
            value = real(top, flag) / divisor
        elif len(stripped) > MAX_DIGITS or not _REAL.fullmatch(stripped):
            example = "0.5 or 1/255" if fraction else "0.5"
            raise TrtforgeError(f"{flag}: {_shown(text)} is not a number (ASCII, e.g. {example})")
        else:
            value = float(stripped)
    else:
        value = float(text)
    if not math.isfinite(value):
        raise TrtforgeError(f"{flag}: {_shown(str(text))} is not a finite number")
    if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
        raise TrtforgeError(f"{flag}: {value:g} is out of range; expected a number {_range_words(low, high, low_open)}")
    return value


def _shown(text: object) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "...'"


def int_arg(flag: str, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` for :func:`integer`."""
    return lambda text: integer(text, flag, low, high)


def real_arg(
    flag: str, low: float | None = None, high: float | None = None, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse ``type=`` for :func:`real`."""
    return lambda text: real(text, flag, low, high, low_open)
