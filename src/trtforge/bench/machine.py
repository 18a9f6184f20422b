"""The machine a number was measured on: CPU and its flags, usable cores, load, versions."""

from __future__ import annotations

import datetime as _dt
import os
import platform

import numpy as np

from trtforge._host import usable_cores


def machine_facts() -> dict[str, object]:
    """What a reader needs to judge the numbers: the machine, its load, the software."""
    from trtforge import __version__
    from trtforge.engine import cpu_facts

    facts: dict[str, object] = {
        "cpu": cpu_facts(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "trtforge": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if hasattr(os, "getloadavg"):
        facts["loadavg"] = list(os.getloadavg())
    facts["usable_cores"] = usable_cores()
    try:
        import onnxruntime

        facts["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return facts
