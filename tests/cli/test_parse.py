"""The CLI's shared string parsers: one parse per kind of string, a one-line error naming the flag."""

from __future__ import annotations

import pytest

from trtforge.cli.parse import mem_pools, mib, names, percentiles
from trtforge.errors import TrtforgeError


def test_names_drop_empty_items_and_spaces() -> None:
    assert names(" a, b ,,c ") == ("a", "b", "c")
    assert names(None) == () and names("") == ()


@pytest.mark.parametrize(
    ("text", "expected"), [("256", 256 << 20), ("48K", 48 << 10), ("1G", 1 << 30), ("0.5m", 1 << 19)]
)
def test_sizes_are_mib_or_suffixed(text: str, expected: int) -> None:
    assert mib(text, "--workspace") == expected


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "0", "lots", "1e400", ""])
def test_sizes_that_are_not_positive_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(TrtforgeError, match="--workspace"):
        mib(text, "--workspace")


def test_memory_pools_fold_in_the_workspace_and_name_bad_pools() -> None:
    assert mem_pools("tacticSharedMem:48K", "--memPoolSize", workspace_mib=64) == (
        ("workspace", 64 << 20),
        ("tacticSharedMem", 48 << 10),
    )
    with pytest.raises(TrtforgeError, match="POOL one of workspace"):
        mem_pools("vram:1G", "--memPoolSize")
    with pytest.raises(TrtforgeError, match="--memPoolSize"):
        mem_pools("workspace:inf", "--memPoolSize")


def test_percentiles_are_numbers_from_0_to_100() -> None:
    assert percentiles("90, 99.9") == (90.0, 99.9)
    for bad in ("150", "x", "", "nan"):
        with pytest.raises(TrtforgeError, match="percentile"):
            percentiles(bad)
