"""``trtforge serve`` on a real tritonserver (PyTriton's): answers match the engine's own runner exactly
over HTTP and gRPC, bad requests get an error while the server keeps serving, the dynamic batcher
merges concurrent requests, and SIGTERM stops everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import DIGITS, DIGITS_PREPROCESS, ROOT, run_cli

pytest.importorskip("pytriton")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

TOKEN = "trtforge-test-token"
HEADERS = {"triton-access-token": TOKEN}


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    http: str
    grpc: str
    engines: dict[str, Path]
    log: Path


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def engines(digits_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("served")
    built = {"fp32": folder / "digits_fp32.engine", "int8": folder / "digits_int8.engine"}
    assert run_cli("build", str(digits_onnx), "-o", str(built["fp32"])).returncode == 0
    proc = run_cli(
        "build",
        str(digits_onnx),
        "-o",
        str(built["int8"]),
        "--precision",
        "int8",
        "--calib-data",
        str(DIGITS / "calib"),
        "--preprocess",
        DIGITS_PREPROCESS,
        "--calib-num",
        "32",
    )
    assert proc.returncode == 0, proc.stderr
    return built


@pytest.fixture(scope="module")
def served(engines: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    http, grpc, metrics = _free_ports(3)
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    env = {
        **os.environ,
        "TRTFORGE_SERVE_TOKEN": TOKEN,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }
    # A long queue delay, so that concurrent requests surely meet in the batcher.
    cmd = [
        sys.executable,
        "-m",
        "trtforge",
        "serve",
        *map(str, engines.values()),
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
        "--max-batch",
        "16",
        "--max-queue-delay-us",
        "50000",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    served = Served(
        process, f"localhost:{http}", f"localhost:{grpc}", {f"digits_{k}": v for k, v in engines.items()}, log
    )
    try:
        client = httpclient.InferenceServerClient(served.http)
        deadline = time.monotonic() + 90
        while not _ready(client, served.engines):
            assert process.poll() is None, f"trtforge serve exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"server not ready in 90 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield served
    finally:
        if process.poll() is None:
            process.kill()  # only when a test left it running; the shutdown test stops it cleanly
            process.wait()


def _ready(client: httpclient.InferenceServerClient, names: dict[str, Path]) -> bool:
    try:
        return bool(client.is_server_ready()) and all(client.is_model_ready(n) for n in names)
    except Exception:
        return False


def _samples(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 32, 32), dtype=np.float32)


def _http_infer(url: str, model: str, x: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url)
    item = httpclient.InferInput("image", list(x.shape), "FP32" if x.dtype == np.float32 else "FP64")
    item.set_data_from_numpy(x)
    try:
        return client.infer(model, [item]).as_numpy("output_0")
    finally:
        client.close()


def _grpc_infer(url: str, model: str, x: np.ndarray) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    item = grpcclient.InferInput("image", list(x.shape), "FP32")
    item.set_data_from_numpy(x)
    try:
        return client.infer(model, [item]).as_numpy("output_0")
    finally:
        client.close()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_http_and_grpc_answers_equal_the_engines_own_runner(served: Served, precision: str) -> None:
    from trtforge.build import load

    model = f"digits_{precision}"
    x = _samples(3, seed=1)
    expected = load(served.engines[model]).infer({"image": x})["output_0"]
    np.testing.assert_array_equal(_http_infer(served.http, model, x), expected)
    np.testing.assert_array_equal(_grpc_infer(served.grpc, model, x), expected)


def test_a_malformed_request_gets_an_error_and_the_server_keeps_serving(served: Served) -> None:
    with pytest.raises(InferenceServerException, match="shape"):
        _http_infer(served.http, "digits_fp32", np.zeros((2, 1, 31, 32), np.float32))
    with pytest.raises(InferenceServerException, match="(?i)type|FP64"):
        _http_infer(served.http, "digits_fp32", np.zeros((2, 1, 32, 32), np.float64))
    with pytest.raises(InferenceServerException):
        _grpc_infer(served.grpc, "no_such_model", _samples(1))
    assert _http_infer(served.http, "digits_fp32", _samples(2)).shape == (2, 10)


def test_the_dynamic_batcher_merges_concurrent_requests(served: Served) -> None:
    client = httpclient.InferenceServerClient(served.http)

    def counts() -> tuple[int, int]:
        stats = client.get_inference_statistics("digits_fp32", headers=HEADERS)["model_stats"][0]
        return int(stats["inference_count"]), int(stats["execution_count"])

    before = counts()
    with ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(lambda i: _http_infer(served.http, "digits_fp32", _samples(1, seed=i)), range(8)))
    after = counts()
    assert [o.shape for o in outputs] == [(1, 10)] * 8
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 8 and executions < 8, (inferences, executions)


def test_bench_server_measures_each_concurrency_over_both_protocols(served: Served, tmp_path: Path) -> None:
    import json

    for protocol, url in (("http", served.http), ("grpc", served.grpc)):
        out = tmp_path / f"{protocol}.json"
        proc = run_cli(
            "bench",
            "--server",
            url,
            "--model",
            "digits_fp32",
            "--protocol",
            protocol,
            "--concurrency",
            "1,2",
            "--warmup",
            "100",
            "--duration",
            "0.5",
            "--json",
            str(out),
        )
        assert proc.returncode == 0, proc.stderr
        levels = json.loads(out.read_text())["levels"]
        assert [lv["concurrency"] for lv in levels] == [1, 2]
        assert all(lv["requests"] > 0 and lv["latency_ms"]["median"] > 0 for lv in levels)
    proc = run_cli("bench", "--server", served.http, "--model", "no_such_model", "--duration", "0.1")
    assert proc.returncode == 2 and "no_such_model" in proc.stderr


def test_a_port_in_use_is_one_line_before_anything_starts(engines: dict[str, Path]) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        http, metrics = _free_ports(2)
        proc = run_cli(
            "serve",
            str(engines["fp32"]),
            "--http-port",
            str(http),
            "--grpc-port",
            str(port),
            "--metrics-port",
            str(metrics),
        )
    assert proc.returncode == 2 and f"port {port} (--grpc-port)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_sigterm_stops_the_server_and_every_process_it_started(served: Served) -> None:
    children = _descendants(served.process.pid)
    assert children, "tritonserver runs as a child of trtforge serve"
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=45) == 0, served.log.read_text()[-3000:]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in children if _alive(p)] == []
    log = served.log.read_text()
    assert "stopped" in log
    workspace = Path(log.split("workspace: ", 1)[1].split()[0])
    assert workspace.name.startswith("trtforge-serve-") and not workspace.exists()
