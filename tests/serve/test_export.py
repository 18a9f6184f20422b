"""``export triton``: the written config parses with Triton's own protobuf and says what the manifest says."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import run_cli

from trtforge.engine import read_manifest
from trtforge.serve.triton_config import parse_config


@pytest.fixture(scope="module")
def engines(digits_onnx: Path, digits_bs1: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("export")
    built = {}
    for name, onnx in (("dynamic", digits_onnx), ("bs1", digits_bs1)):
        built[name] = folder / f"{name}.engine"
        proc = run_cli("build", str(onnx), "-o", str(built[name]))
        assert proc.returncode == 0, proc.stderr
    return built


def test_dynamic_batch_engine_exports_as_onnxruntime_with_batching(engines: dict[str, Path], tmp_path: Path) -> None:
    proc = run_cli(
        "export",
        "triton",
        str(engines["dynamic"]),
        "-o",
        str(tmp_path / "repo"),
        "--name",
        "digits",
        "--max-batch",
        "16",
        "--instances",
        "2",
        "--max-queue-delay-us",
        "500",
    )
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "repo" / "digits"
    config = parse_config((folder / "config.pbtxt").read_text())
    manifest = read_manifest(engines["dynamic"])
    assert (config.name, config.platform, config.max_batch_size) == ("digits", "onnxruntime_onnx", 16)
    assert [(t.name, list(t.dims)) for t in config.input] == [(s.name, list(s.shape[1:])) for s in manifest.inputs]
    assert [(t.name, list(t.dims)) for t in config.output] == [(s.name, list(s.shape[1:])) for s in manifest.outputs]
    assert config.input[0].data_type == 11  # TYPE_FP32 in Triton's DataType enum
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.kind, g.count) for g in config.instance_group] == [(2, 2)]  # KIND_CPU, two instances
    assert (folder / "1" / "model.onnx").read_bytes() == engines["dynamic"].read_bytes()
    assert [p.name for p in tmp_path.joinpath("repo").iterdir()] == ["digits"]  # no staging folder left


def test_fixed_batch_engine_keeps_its_batch_axis_in_dims(engines: dict[str, Path], tmp_path: Path) -> None:
    proc = run_cli("export", "triton", str(engines["bs1"]), "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    config = parse_config((tmp_path / "bs1" / "config.pbtxt").read_text())
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, 1, 32, 32]


def test_python_backend_batches_a_fixed_batch_engine(engines: dict[str, Path], tmp_path: Path) -> None:
    proc = run_cli("export", "triton", str(engines["bs1"]), "-o", str(tmp_path), "--backend", "python")
    assert proc.returncode == 0, proc.stderr
    config = parse_config((tmp_path / "bs1" / "config.pbtxt").read_text())
    assert (config.backend, config.platform, config.max_batch_size) == ("python", "", 8)
    assert sorted(p.name for p in (tmp_path / "bs1" / "1").iterdir()) == [
        "model.engine",
        "model.engine.json",
        "model.py",
    ]
    compile((tmp_path / "bs1" / "1" / "model.py").read_text(), "model.py", "exec")


def test_export_replaces_an_existing_model_whole(engines: dict[str, Path], tmp_path: Path) -> None:
    for batch in ("4", "2"):
        assert (
            run_cli("export", "triton", str(engines["dynamic"]), "-o", str(tmp_path), "--max-batch", batch).returncode
            == 0
        )
    assert parse_config((tmp_path / "dynamic" / "config.pbtxt").read_text()).max_batch_size == 2
    assert [p.name for p in tmp_path.iterdir()] == ["dynamic"]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--max-batch", "4"], "fixed batch of 1"),
        (["--kind", "tpu"], "instance kind"),
        (["--backend", "vllm"], "Triton backend"),
        (["--name", "a/b"], "bad model name"),
        (["--instances", "0"], "--instances"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(
    engines: dict[str, Path], tmp_path: Path, extra: list[str], words: str
) -> None:
    proc = run_cli("export", "triton", str(engines["bs1"]), "-o", str(tmp_path / "repo"), *extra)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr
    assert not (tmp_path / "repo").exists() or list((tmp_path / "repo").iterdir()) == []


def test_a_missing_engine_or_an_empty_folder_is_a_user_error(tmp_path: Path) -> None:
    for source, words in ((tmp_path / "nope.engine", "engine not found"), (tmp_path, "without model.engine")):
        proc = run_cli("export", "triton", str(source), "-o", str(tmp_path / "repo"))
        assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command, hidden", [(["export", "triton"], "tritonclient"), (["serve"], "pytriton")])
def test_without_the_serve_extra_one_line_names_the_pip_command(
    engines: dict[str, Path], tmp_path: Path, command: list[str], hidden: str
) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    args = [*command, str(engines["dynamic"]), *(["-o", str(tmp_path / "repo")] if command[0] == "export" else [])]
    code = (
        f"import sys; sys.modules[{hidden!r}] = None\n"  # the import system's way to make a package absent
        f"from trtforge.cli import main; sys.exit(main({args!r}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "pip install 'trtforge[serve]'" in proc.stderr and not (tmp_path / "repo").exists()


def test_cuda_engine_config_runs_on_gpu_with_the_chosen_cuda_options(engines: dict[str, Path]) -> None:
    """An ONNX Runtime CUDA engine (its manifest as a CUDA build records it; none can be built here)."""
    import dataclasses

    from trtforge.serve.triton_config import check_config, config_text, plan_model

    options = {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC", "prefer_nhwc": "1", "enable_cuda_graph": "1"}
    cpu = read_manifest(engines["dynamic"])
    manifest = dataclasses.replace(cpu, device={"kind": "cuda"}, build={**cpu.build, "provider_options": options})
    model = plan_model(manifest, "digits")
    text = config_text(model)
    check_config(text, model, manifest)
    config = parse_config(text)
    assert config.instance_group[0].kind == 1  # KIND_GPU, from the manifest
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "cuda"
    assert dict(accelerator.parameters) == {"cudnn_conv_algo_search": "HEURISTIC", "prefer_nhwc": "1"}
    assert not parse_config(config_text(plan_model(manifest, "digits", kind="cpu"))).HasField("optimization")


def test_preferred_batch_sizes_given_or_from_a_measured_sweep(engines: dict[str, Path], tmp_path: Path) -> None:
    proc = run_cli("export", "triton", str(engines["dynamic"]), "-o", str(tmp_path / "a"), "--preferred-batch", "4,2")
    assert proc.returncode == 0, proc.stderr
    assert list(
        parse_config((tmp_path / "a" / "dynamic" / "config.pbtxt").read_text()).dynamic_batching.preferred_batch_size
    ) == [2, 4]
    proc = run_cli(
        "export",
        "triton",
        str(engines["dynamic"]),
        "-o",
        str(tmp_path / "b"),
        "--max-batch",
        "4",
        "--preferred-batch",
        "auto",
    )
    assert proc.returncode == 0, proc.stderr
    chosen = list(
        parse_config((tmp_path / "b" / "dynamic" / "config.pbtxt").read_text()).dynamic_batching.preferred_batch_size
    )
    assert chosen and set(chosen) <= {1, 2, 4}
    proc = run_cli(
        "export",
        "triton",
        str(engines["bs1"]),
        "-o",
        str(tmp_path / "c"),
        "--backend",
        "python",
        "--preferred-batch",
        "auto",
    )
    assert proc.returncode == 2 and "fixed batch" in proc.stderr


def test_the_sweep_prefers_the_smallest_batch_near_the_best_and_the_best() -> None:
    from trtforge.serve.sweep import SweepPoint, preferred_batches, sweep_sizes

    assert sweep_sizes(12) == [1, 2, 4, 8, 12]
    points = [
        SweepPoint(1, 100.0, 1.0),
        SweepPoint(2, 180.0, 1.1),
        SweepPoint(4, 300.0, 1.3),
        SweepPoint(8, 320.0, 2.5),
        SweepPoint(16, 310.0, 5.0),
    ]
    assert preferred_batches(points) == [4, 8]  # 300 >= 0.9 * 320; 8 is the best


def test_exporting_a_repository_model_onto_itself_is_refused(engines: dict[str, Path], tmp_path: Path) -> None:
    assert run_cli("export", "triton", str(engines["bs1"]), "-o", str(tmp_path), "--backend", "python").returncode == 0
    inside = tmp_path / "bs1" / "1" / "model.engine"
    proc = run_cli("export", "triton", str(inside), "-o", str(tmp_path), "--name", "bs1", "--backend", "python")
    assert proc.returncode == 2 and "would destroy" in proc.stderr and inside.is_file()


def _tensorrt_manifest(engine: Path, top: int):  # type: ignore[no-untyped-def]
    """The digits manifest as a TensorRT build with one profile up to batch ``top`` records it."""
    import dataclasses

    cpu = read_manifest(engine)
    profile = {"image": {"min": [1, 1, 32, 32], "opt": [top, 1, 32, 32], "max": [top, 1, 32, 32]}}
    return dataclasses.replace(cpu, backend="tensorrt", build={"tensorrt": {"profiles": [profile]}})


def test_a_tensorrt_profile_caps_the_batch_triton_sends(engines: dict[str, Path]) -> None:
    from trtforge.errors import TrtforgeError
    from trtforge.serve.triton_config import plan_model

    manifest = _tensorrt_manifest(engines["dynamic"], 4)
    model = plan_model(manifest, "digits")
    assert (model.platform, model.max_batch, model.profile_batch) == ("tensorrt_plan", 4, 4)
    with pytest.raises(TrtforgeError, match="profile takes"):
        plan_model(manifest, "digits", max_batch=16)
    assert plan_model(manifest, "digits", "python", max_batch=16).profile_batch == 4


def test_the_python_model_runs_batches_in_pieces_the_profile_takes(engines: dict[str, Path]) -> None:
    import numpy as np

    from trtforge.build import load
    from trtforge.serve.batching import EngineModel
    from trtforge.serve.triton_config import plan_model

    runner = load(engines["dynamic"])
    seen: list[int] = []

    class Recording:  # the real runner, with the batch of each call noted
        inputs, outputs = runner.inputs, runner.outputs

        def infer(self, feeds):  # type: ignore[no-untyped-def]
            seen.append(int(feeds["image"].shape[0]))
            return runner.infer(feeds)

    model = EngineModel(Recording(), plan_model(_tensorrt_manifest(engines["dynamic"], 4), "d", "python", 16))
    x = np.random.default_rng(0).random((9, 1, 32, 32), dtype=np.float32)
    out = model.infer([{"image": x[i : i + 3]} for i in range(0, 9, 3)])
    assert seen == [4, 4, 1]
    np.testing.assert_allclose(
        np.concatenate([o["output_0"] for o in out]), runner.infer({"image": x})["output_0"], rtol=1e-5, atol=1e-6
    )


def _plan_manifest(engine: Path, runs_on: dict[str, object]):  # type: ignore[no-untyped-def]
    """The digits manifest as a TensorRT build on an H200 records it (``runs_on`` as given)."""
    import dataclasses

    cpu = read_manifest(engine)
    device = {"kind": "cuda", "name": "NVIDIA H200", "compute_capability": "9.0"}
    return dataclasses.replace(cpu, backend="tensorrt", device=device, build={"tensorrt": {"runs_on": runs_on}})


def test_a_plan_for_one_gpu_generation_is_named_by_its_compute_capability(
    engines: dict[str, Path], tmp_path: Path
) -> None:
    from trtforge.serve.export import _write_version
    from trtforge.serve.triton_config import check_config, config_text, plan_model

    manifest = _plan_manifest(engines["dynamic"], {"compute_capabilities": ["9.0"], "and_later": False})
    model = plan_model(manifest, "digits")
    text = config_text(model)
    check_config(text, model, manifest)  # Triton's protobuf, field by field
    config = parse_config(text)
    assert config.platform == "tensorrt_plan" and dict(config.cc_model_filenames) == {"9.0": "model.sm90.plan"}
    assert config.default_model_filename == ""  # no model.plan: another GPU finds no plan rather than a wrong one
    _write_version(tmp_path / "1", engines["dynamic"], b"plan", manifest, model.backend, model.filename)
    assert [p.name for p in (tmp_path / "1").iterdir()] == ["model.sm90.plan"]


def test_plans_that_run_on_later_gpus_or_the_python_backend_keep_one_file_name(engines: dict[str, Path]) -> None:
    import dataclasses

    from trtforge.serve.triton_config import config_text, plan_model

    compat = _plan_manifest(engines["dynamic"], {"compute_capabilities": ["8.0"], "and_later": True})
    model = plan_model(compat, "digits")
    assert (model.filename, model.cc_filenames) == ("model.plan", ())
    assert not parse_config(config_text(model)).cc_model_filenames
    exact = _plan_manifest(engines["dynamic"], {"compute_capabilities": ["9.0"], "and_later": False})
    python = plan_model(exact, "digits", "python")
    assert (python.filename, python.cc_filenames) == ("model.py", ())
    # a manifest without runs_on (older builds): the GPU it was built on
    bare = dataclasses.replace(_plan_manifest(engines["dynamic"], {}), build={})
    assert plan_model(bare, "digits").cc_filenames == (("9.0", "model.sm90.plan"),)
