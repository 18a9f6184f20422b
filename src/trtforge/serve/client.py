"""``bench --server``: throughput and latency of a served model, per client concurrency.

Each of C client threads has its own tritonclient connection and sends one request at a time,
back to back, for a warm-up and then a timed window; throughput counts the requests that finished
in the window, latency is each request's round trip (``perf_counter``), with bench's statistics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtforge.bench.stats import DEFAULT_PERCENTILES, Stats
from trtforge.errors import TrtforgeError, require

PROTOCOLS = ("http", "grpc")
_NUMPY = {
    "FP32": "float32",
    "FP16": "float16",
    "FP64": "float64",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}


@dataclass(frozen=True)
class LevelResult:
    """One concurrency level: requests, samples and latency."""

    concurrency: int
    requests: int
    seconds: float
    batch: int
    latency: Stats

    @property
    def qps(self) -> float:
        return self.requests / self.seconds

    def to_json(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "seconds": self.seconds,
            "batch": self.batch,
            "qps": self.qps,
            "samples_per_s": self.qps * self.batch,
            "latency_ms": self.latency.to_json(),
        }


def _client_module(protocol: str) -> Any:
    if protocol not in PROTOCOLS:
        raise TrtforgeError(f"unknown protocol {protocol!r}; expected one of: {', '.join(PROTOCOLS)}")
    return require(f"tritonclient.{protocol}", "serve", "bench --server")


def server_url(text: str) -> str:
    """``HOST:PORT[/base-path]`` as tritonclient takes it, checked: a host, and a port from 1 to 65535."""
    from trtforge.numbers import integer

    address, _, _ = text.partition("/")
    host, colon, port = address.rpartition(":")
    if "://" in text or not colon or not host or any(c.isspace() for c in text):
        raise TrtforgeError(f"--server {text!r}: expected HOST:PORT, e.g. localhost:8000 (no http:// or grpc://)")
    integer(port, "--server's port", 1, 65535)
    return text


def _client(protocol: str, url: str) -> Any:
    try:
        return _client_module(protocol).InferenceServerClient(server_url(url))
    except TrtforgeError:
        raise
    except Exception as exc:  # tritonclient's own check of the address
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrtforgeError(f"--server {url!r}: {first}; expected HOST:PORT, e.g. localhost:8000") from None


def model_inputs(url: str, model: str, protocol: str, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs at the served model's shapes (the batch axis = ``batch``)."""
    client = _client(protocol, url)
    try:
        meta = client.get_model_metadata(model, **({"as_json": True} if protocol == "grpc" else {}))
        config = client.get_model_config(model, **({"as_json": True} if protocol == "grpc" else {}))
    except Exception as exc:
        client.close()
        raise TrtforgeError(
            f"cannot read model {model!r} from the server at {url} ({protocol}): "
            f"{str(exc).strip().splitlines()[0]}; is it serving, and is the name right?"
        ) from None
    client.close()
    config = config.get("config", config)
    batching = int(config.get("max_batch_size", 0)) > 0
    rng = np.random.default_rng(seed)
    feeds = {}
    for item in meta["inputs"]:
        dims = [int(d) for d in item["shape"]]
        if dims and (batching or dims[0] < 0):  # without batching, a dynamic first axis is still the batch
            dims[0] = batch
        if any(d < 0 for d in dims):
            raise TrtforgeError(
                f"input {item['name']} of {model} has a dynamic dimension ({dims}); "
                "bench --server feeds the model's shapes with only the batch chosen"
            )
        dtype = _NUMPY.get(item["datatype"])
        if dtype is None:
            raise TrtforgeError(f"input {item['name']} has type {item['datatype']}, which bench --server cannot fill")
        feeds[item["name"]] = rng.random(dims).astype(dtype)
    return feeds


def _worker(
    module: Any,
    url: str,
    model: str,
    feeds: dict[str, np.ndarray],
    start: float,
    stop: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    client = module.InferenceServerClient(url)
    inputs = []
    for name, value in feeds.items():
        item = module.InferInput(name, list(value.shape), module.np_to_triton_dtype(value.dtype))
        item.set_data_from_numpy(value)
        inputs.append(item)
    try:
        while (t0 := time.perf_counter()) < stop:
            client.infer(model, inputs)
            t1 = time.perf_counter()
            if t0 >= start and t1 <= stop:
                latencies.append((t1 - t0) * 1000.0)
    except Exception as exc:
        errors.append(str(exc).strip().splitlines()[0])
    finally:
        client.close()


def bench_level(
    url: str,
    model: str,
    feeds: dict[str, np.ndarray],
    concurrency: int,
    protocol: str = "http",
    warmup_s: float = 0.5,
    duration_s: float = 3.0,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> LevelResult:
    """``concurrency`` clients in a loop; the requests that started and ended inside the timed window count."""
    if concurrency < 1:
        raise TrtforgeError(f"bad concurrency {concurrency}: expected a positive number")
    module = _client_module(protocol)
    start = time.perf_counter() + warmup_s
    stop = start + duration_s
    latencies: list[float] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=_worker, args=(module, url, model, feeds, start, stop, latencies, errors))
        for _ in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise TrtforgeError(f"the server at {url} refused a request to {model}: {errors[0]}")
    batch = int(next(iter(feeds.values())).shape[0]) if feeds else 1
    return LevelResult(concurrency, len(latencies), duration_s, batch, Stats.of(latencies, percentiles))


def bench_server(
    url: str,
    model: str,
    concurrency: Sequence[int] = (1, 2, 4, 8),
    protocol: str = "http",
    batch: int = 1,
    warmup_s: float = 0.5,
    duration_s: float = 3.0,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    seed: int = 0,
) -> list[LevelResult]:
    """Throughput and latency of ``model`` served at ``url``, one entry per concurrency level."""
    feeds = model_inputs(url, model, protocol, batch, seed)
    return [bench_level(url, model, feeds, c, protocol, warmup_s, duration_s, percentiles) for c in concurrency]


def summary(results: Sequence[LevelResult]) -> str:
    """A table: concurrency, throughput, latency median and percentiles."""
    ps = list(results[0].latency.percentiles) if results else []
    head = f"{'concurrency':>11} {'qps':>9} {'samples/s':>10} {'median ms':>10} " + " ".join(
        f"{f'p{p:g} ms':>9}" for p in ps
    )
    rows = [
        f"{r.concurrency:>11} {r.qps:>9.1f} {r.qps * r.batch:>10.1f} {r.latency.median:>10.3f} "
        + " ".join(f"{r.latency.percentiles[p]:>9.3f}" for p in ps)
        for r in results
    ]
    return "\n".join([head, *rows])
