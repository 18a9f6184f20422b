"""``bench``: time an engine with trtexec's definitions.

``stats`` (percentiles, median, coefficient of variance), ``result`` (settings and results),
``loop`` (the timing loops on CPU and GPU runners), ``machine`` (facts about the host), ``report``
(the performance summary, JSON, per-query times and plots). The harness only times: runners come
from :func:`trtforge.build.load_runners`, inputs from :mod:`trtforge.data`.
"""

from trtforge.bench.loop import bench
from trtforge.bench.result import BenchResult, BenchSettings

__all__ = ["BenchResult", "BenchSettings", "bench"]
