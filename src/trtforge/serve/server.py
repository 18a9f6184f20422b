"""``serve``: trtforge engines on a real Triton Inference Server, through PyTriton.

PyTriton starts the ``tritonserver`` binary it ships and routes each model's batches (after
Triton's dynamic batcher) to :meth:`EngineModel.infer` in this process.  Every engine is loaded and
run once before it is bound, so the server reports ready only for models that ran; SIGTERM and
SIGINT stop the server, its Python stubs and the workspace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from trtforge.errors import TrtforgeError, require
from trtforge.serve.batching import LOG, EngineModel, load_model
from trtforge.serve.export import resolve_engine

TOKEN_ENV = "TRTFORGE_SERVE_TOKEN"
"""Access token for Triton's admin endpoints (statistics, model repository...); random when unset."""


@dataclass(frozen=True)
class ServeOptions:
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int | None = None
    """Triton's max_batch_size (None: the default, 8; 0: no batching)."""
    max_queue_delay_us: int = 100
    instances: int = 1
    access_token: str | None = None


def _match_libpython() -> None:
    """Point Triton's Python stub at this interpreter's libpython.

    The stub links ``libpython3.X.so.1.0`` by name; on a machine with a second Python of the same
    minor version (Debian's beside pyenv's) it can load the other one, whose C modules do not
    match this interpreter's standard library, and no model loads.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    lib = Path(str(libdir)) / f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0"
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if lib.exists() and str(libdir) not in current.split(os.pathsep):
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(libdir), current]))


def _check_ports(options: ServeOptions) -> None:
    """A port in use (or given twice) is a user error before anything starts, not a server that never comes up."""
    import socket

    ports = {"--http-port": options.http_port, "--grpc-port": options.grpc_port, "--metrics-port": options.metrics_port}
    if len(set(ports.values())) < len(ports):
        raise TrtforgeError(f"the HTTP, gRPC and metrics ports must differ (got {', '.join(map(str, ports.values()))})")
    for flag, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))
            except OSError as exc:
                raise TrtforgeError(
                    f"port {port} ({flag}) cannot be used: {exc.strerror}; choose another with {flag}"
                ) from None


def _infer_fn(model: EngineModel) -> Callable[[list[Any]], list[dict[str, np.ndarray]]]:
    def infer(requests: list[Any]) -> list[dict[str, np.ndarray]]:
        try:
            return model.infer([{k: np.asarray(v) for k, v in r.items()} for r in requests])
        except TrtforgeError as exc:  # a bad request: an error to its client, the server keeps serving
            raise require("pytriton.exceptions", "serve", "serving").PyTritonBadParameterError(str(exc)) from None

    return infer


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as SIGINT does, so that a stop runs the same cleanup."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class TritonServer:
    """Engines served by Triton: ``with TritonServer(engines, options) as server: ...`` or :func:`serve`."""

    def __init__(self, engines: Sequence[str | os.PathLike[str]], options: ServeOptions = ServeOptions()) -> None:
        if not engines:
            raise TrtforgeError("give at least one engine to serve")
        self.options = options
        self.engines: dict[str, Path] = {}
        for source in engines:
            engine, name = resolve_engine(source)
            if name in self.engines:
                raise TrtforgeError(
                    f"two engines would be served as {name!r} ({self.engines[name]} and {engine}); rename one file"
                )
            self.engines[name] = engine
        self._triton: Any = None
        self._scratch: Path | None = None

    @property
    def http_url(self) -> str:
        return f"localhost:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.options.grpc_port}"

    @property
    def access_token(self) -> str | None:
        return None if self._triton is None else str(self._triton.get_access_token())

    def start(self) -> TritonServer:
        """Load and run each engine once, start tritonserver, bind the models; returns when all are ready."""
        triton_mod = require("pytriton.triton", "serve", "trtforge serve")
        config_mod = require("pytriton.model_config", "serve", "trtforge serve")
        o = self.options
        _check_ports(o)
        loaded = {
            name: load_model(path, name, o.max_batch, o.max_queue_delay_us, o.instances)
            for name, path in self.engines.items()
        }
        _match_libpython()
        config = triton_mod.TritonConfig(
            http_port=o.http_port, grpc_port=o.grpc_port, metrics_port=o.metrics_port, exit_timeout_secs=5
        )
        security = triton_mod.TritonSecurityConfig(access_token=o.access_token or os.environ.get(TOKEN_ENV))
        # PyTriton's workspace (model store, tritonserver copy, sockets) in a folder of ours, removed on stop.
        self._scratch = Path(tempfile.mkdtemp(prefix="trtforge-serve-"))
        LOG.info("workspace: %s", self._scratch)
        try:
            self._triton = triton_mod.Triton(
                config=config, security_config=security, workspace=self._scratch / "workspace"
            )
            self._triton.run()
            for name, models in loaded.items():
                self._bind(config_mod, name, models)
        except BaseException:
            self.stop()
            raise
        return self

    def _bind(self, config_mod: Any, name: str, models: list[EngineModel]) -> None:
        m = models[0].model

        def tensors(specs: Sequence[Any]) -> list[Any]:
            return [config_mod.Tensor(name=s.name, dtype=np.dtype(s.dtype), shape=tuple(m.dims(s))) for s in specs]

        batcher = config_mod.DynamicBatcher(max_queue_delay_microseconds=m.max_queue_delay_us)
        config = config_mod.ModelConfig(batching=m.max_batch > 0, max_batch_size=max(m.max_batch, 1), batcher=batcher)
        self._triton.bind(
            model_name=name,
            infer_func=[_infer_fn(x) for x in models],
            inputs=tensors(m.inputs),
            outputs=tensors(m.outputs),
            config=config,
            strict=True,
        )
        LOG.info(models[0].describe_batching())

    def stop(self) -> None:
        if self._triton is not None:
            started = _triton_processes()
            self._triton.stop()
            self._triton = None
            _reap(started)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def wait(self) -> None:
        """Serve until SIGTERM or SIGINT (or until Triton dies), then stop."""
        try:
            with sigterm_interrupts():
                self._triton.serve()  # returns after stopping, on KeyboardInterrupt or a dead server
        finally:
            self.stop()

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _triton_processes() -> set[int]:
    """This process's descendants that are Triton's (tritonserver and its Python-backend stubs)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return {pid for pid in found if "triton" in _cmdline(pid)}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reap(pids: set[int], grace_s: float = 30.0) -> None:
    """Wait for Triton's processes to end after a stop; kill what outlives ``grace_s`` (no orphans)."""
    import time

    deadline = time.monotonic() + grace_s
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if _running(p)]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if left:
        LOG.warning("killed %d Triton process(es) still running %gs after the stop", len(left), grace_s)


def serve(engines: Sequence[str | os.PathLike[str]], options: ServeOptions = ServeOptions()) -> None:
    """Serve ``engines`` until SIGTERM/SIGINT; a signal while starting stops what was started."""
    server = TritonServer(engines, options)
    with sigterm_interrupts():
        server.start()
        LOG.info(
            "serving %s: HTTP %s, gRPC %s, metrics :%d",
            ", ".join(server.engines),
            server.http_url,
            server.grpc_url,
            options.metrics_port,
        )
        server.wait()
