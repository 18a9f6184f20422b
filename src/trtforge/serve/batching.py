"""An engine behind Triton: requests checked against the engine's IO, batched into runs it takes.

Triton's dynamic batcher hands over several requests at once; they are stacked along the batch
axis and run through :func:`trtforge.run.run_samples`, which feeds the engine chunks it accepts
(its fixed batch, the last chunk padded; or up to ``run.MAX_CHUNK`` for a dynamic batch), and the
outputs are split back per request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from trtforge.backends.base import Forkable, Runner
from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError
from trtforge.run import MAX_CHUNK, run_samples
from trtforge.serve.triton_config import TritonModel

LOG = logging.getLogger("trtforge.serve")


class EngineModel:
    """One served engine: ``check`` a request, ``infer`` a list of requests, ``warm_up`` once."""

    def __init__(self, runner: Runner, model: TritonModel) -> None:
        self.runner = runner
        self.model = model

    def describe_batching(self) -> str:
        m = self.model
        if not m.max_batch:
            return f"{m.name}: no batching; each request runs whole"
        if m.profile_batch is not None:
            return (
                f"{m.name}: Triton batches up to {m.max_batch} samples; the engine's profile takes up to "
                f"{m.profile_batch}, so larger batches run in chunks of {m.profile_batch}"
            )
        if m.engine_batch is not None:
            return (
                f"{m.name}: Triton batches up to {m.max_batch} requests' samples; the engine takes a fixed "
                f"batch of {m.engine_batch}, so a batch runs in chunks of {m.engine_batch}, the last padded"
            )
        return (
            f"{m.name}: Triton batches up to {m.max_batch} samples; the engine takes any batch, "
            f"run in chunks of up to {MAX_CHUNK}"
        )

    def _expected(self, spec: TensorSpec) -> tuple[int | str, ...]:
        return spec.shape[1:] if self.model.max_batch else spec.shape

    def check(self, request: Mapping[str, np.ndarray]) -> None:
        """A user error naming what is wrong with ``request`` (names, dtype, shape)."""
        names = [s.name for s in self.model.inputs]
        if sorted(request) != sorted(names):
            raise TrtforgeError(f"model {self.model.name} takes inputs {names}, got {sorted(request)}")
        for spec in self.model.inputs:
            value = request[spec.name]
            shape = value.shape[1:] if self.model.max_batch else value.shape
            want = self._expected(spec)
            fits = len(shape) == len(want) and all(
                not isinstance(w, int) or w < 0 or w == g for g, w in zip(shape, want)
            )
            if value.dtype != np.dtype(spec.dtype) or not fits:
                batch = "N x " if self.model.max_batch else ""
                raise TrtforgeError(
                    f"input {spec.name}: got {value.dtype} {'x'.join(map(str, value.shape))}, model "
                    f"{self.model.name} takes {spec.dtype} {batch}{'x'.join(map(str, want))}"
                )

    def infer(self, requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Outputs per request; with batching, all requests run as one stacked batch."""
        for request in requests:
            self.check(request)
        if not self.model.max_batch:
            return [self.runner.infer(request) for request in requests]
        rows = [int(next(iter(r.values())).shape[0]) for r in requests]
        feeds = {s.name: np.concatenate([r[s.name] for r in requests]) for s in self.model.inputs}
        LOG.debug("%s: %d requests, %d samples in one run", self.model.name, len(requests), sum(rows))
        outputs = self._run(feeds, sum(rows))
        edges = np.cumsum([0, *rows])
        return [{k: v[a:b] for k, v in outputs.items()} for a, b in zip(edges[:-1], edges[1:])]

    def _run(self, feeds: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """``run_samples`` (fixed batch: chunks, last padded), in pieces no larger than the engine's profile."""
        step = self.model.profile_batch or n
        parts = [run_samples(self.runner, {k: v[i : i + step] for k, v in feeds.items()}) for i in range(0, n, step)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def warm_up(self) -> None:
        """Run the engine once on zeros (batch 1, dynamic dimensions 1): served means it ran."""
        feed = {}
        for spec in self.model.inputs:
            shape = [d if isinstance(d, int) and d >= 0 else 1 for d in self._expected(spec)]
            feed[spec.name] = np.zeros([1, *shape] if self.model.max_batch else shape, dtype=spec.dtype)
        try:
            self.infer([feed])
        except Exception as exc:
            raise TrtforgeError(
                f"model {self.model.name} did not run on zeros of its input shapes before serving: "
                f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
            ) from None


def load_model(
    engine: str | os.PathLike[str],
    name: str,
    max_batch: int | None = None,
    max_queue_delay_us: int = 100,
    instances: int = 1,
) -> list[EngineModel]:
    """The engine loaded once per instance (a runner that can fork shares its engine), checked and warmed up."""
    from trtforge.build import load_with_manifest
    from trtforge.serve.triton_config import plan_model

    runner, manifest = load_with_manifest(engine)
    model = plan_model(manifest, name, "python", max_batch, instances, "cpu", max_queue_delay_us)
    runners = [runner]
    for _ in range(instances - 1):
        # TensorRT: another execution context; an ONNX Runtime session is shared (its run is thread-safe).
        runners.append(runner.fork() if isinstance(runner, Forkable) else runner)
    models = [EngineModel(r, model) for r in runners]
    for m in models:
        m.warm_up()
    return models
