"""``deploy``: one call from a trained model to measured, validated engines and a report.

The stages are the public ones (convert, reshape, build, load, bench); deploy adds the
choice of validation data, the comparison of each engine against the FP32 engine, and the
report.  Everything is written into a hidden folder beside ``OUTDIR`` (named after the process)
and renamed onto it at the end, so an interrupted deploy leaves the old folder or none; a killed
one's staging folder is swept by the next deploy into the same parent folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trtforge._files import check_folder_output, sweep_dead
from trtforge.compare import accuracy, run_all
from trtforge.config import BuildConfig, CalibrationConfig, Precision
from trtforge.data.labels import read_labels_csv
from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    from trtforge.bench import BenchSettings
    from trtforge.converters import ConvertOptions
    from trtforge.data.preprocess import Preprocess

HOLDOUT_EVERY = 5
"""Without --val-data, every 5th calibration image (sorted by path) is held out for validation."""


@dataclass(frozen=True)
class DeployOptions:
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.FP16)
    backend: str = "onnxruntime"
    device: str = "cpu"
    source_format: str | None = None
    convert: ConvertOptions | None = None
    """For sources that are not ONNX already."""
    batch: str | None = None
    """``N`` or ``dynamic``: passed to reshape; None keeps the model's shapes."""
    calibration: CalibrationConfig | None = None
    preprocess: Preprocess | None = None
    """For image validation data (default: the calibration's)."""
    val_data: Path | None = None
    val_num: int = 500
    max_accuracy_drop: float | None = None
    """Largest allowed drop, in percentage points, of top-1 accuracy (with labels) or of
    agreement with the FP32 engine (without; see ``metric``)."""
    select: str | None = None
    metric: str = "auto"
    """Agreement with FP32 without labels: auto (per output: top-1 for class scores, cosine >= 0.999
    per sample for boxes, masks, landmarks), top1 (argmax of the first output) or cosine."""
    bench: BenchSettings | None = None
    force: bool = False
    command: str = ""
    """The command line that asked for this deploy, recorded in the report."""

    def __post_init__(self) -> None:
        if not self.precisions:
            raise TrtforgeError("--precision is empty; give e.g. fp32,fp16,int8")
        if len(set(self.precisions)) != len(self.precisions):
            raise TrtforgeError("--precision lists a precision twice")
        if Precision.INT8 in self.precisions and self.calibration is None:
            raise TrtforgeError("--precision int8 needs --calib-data DIR|FILE.npz (and --preprocess for images)")
        if self.select not in (None, "fastest"):
            raise TrtforgeError(f"--select {self.select!r}: the only choice is 'fastest'")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise TrtforgeError("--max-accuracy-drop is in percentage points and must not be negative")
        if self.val_num < 1:
            raise TrtforgeError("--val-num must be at least 1")
        if self.batch is not None:
            from trtforge.graph.shapes import Batch

            Batch.parse(self.batch)  # a bad --batch is refused before any work


@dataclass
class EngineReport:
    precision: str
    engine: str
    size_bytes: int
    build_s: float
    median_ms: float
    p99_ms: float
    qps: float
    samples_per_s: float
    accuracy: dict[str, float | None] = field(default_factory=dict)
    drop_points: float | None = None
    passed: bool | None = None
    verdict: str = ""
    """The accuracy judgement: the drop against the budget, or why there was none."""
    mixed: dict[str, object] | None = None
    """INT8 with --max-accuracy-drop: the manifest's ``build.mixed`` (units kept float, candidates)."""
    notes: list[str] = field(default_factory=list)
    """What the manifest says costs this engine speed or trust (see :func:`engine_notes`)."""
    refused: bool = False
    """Failed its INT8 self-check, with no --max-accuracy-drop to judge it by: never selected."""
    why: str = ""
    """Why it was selected, or why not (slower, over the budget, refused), with its notes."""
    backend: str = ""
    """The backend the engine was built with (what ``--backend auto`` kept)."""
    auto_ms: dict[str, float] | None = None
    """``--backend auto`` on a CPU: each candidate backend's median ms as timed at build (the
    manifest's ``build.auto``); ``backend`` is the one kept."""


@dataclass
class DeployReport:
    outdir: Path
    onnx: str
    engines: list[EngineReport]
    selected: str | None
    validation: dict[str, object]
    commands: list[str]
    settings: dict[str, object]

    def to_json(self) -> dict[str, object]:
        return {
            "outdir": str(self.outdir),
            "onnx": self.onnx,
            "selected": self.selected,
            "validation": self.validation,
            "settings": self.settings,
            "commands": self.commands,
            "engines": [vars(e) for e in self.engines],
        }


# --------------------------------------------------------------------------- validation data


@dataclass
class Validation:
    """Validation samples (one feed per sample, batch 1) and, when known, their labels."""

    samples: list[dict[str, np.ndarray]]
    labels: list[int] | None
    source: str


def _labels_csv(folder: Path) -> dict[str, int] | None:
    path = folder / "labels.csv"
    return read_labels_csv(path) if path.exists() else None


def _held_out(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(calibration files, validation files): every HOLDOUT_EVERY-th file is held out."""
    val = files[HOLDOUT_EVERY - 1 :: HOLDOUT_EVERY]
    held = set(val)
    return [f for f in files if f not in held], val


def load_validation(
    path: Path,
    input_names: list[str],
    preprocess: Preprocess | None,
    num: int,
    files: list[Path] | None = None,
    axes: Mapping[str, int | None] | None = None,
) -> Validation:
    """Samples from an image folder (labels from ``labels.csv`` if present) or a ``.npz``/``.npy``."""
    from trtforge.data.images import image_files

    if path.is_dir() or files is not None:
        if len(input_names) != 1:
            raise TrtforgeError(
                f"an image folder feeds one input, but the model has {len(input_names)}; "
                "pass --val-data FILE.npz keyed by input name"
            )
        if preprocess is None:
            raise TrtforgeError("validation images need --preprocess to say how images become inputs")
        files = (files if files is not None else image_files(path))[:num]
        if not files:
            raise TrtforgeError(f"no images found in {path} for validation")
        table = _labels_csv(path)
        samples, labels = [], []
        for file in files:
            try:
                x = preprocess.load(file)
            except TrtforgeError:
                continue
            samples.append({input_names[0]: x[None]})
            if table is not None:
                key = file.relative_to(path).as_posix()
                if key not in table:
                    raise TrtforgeError(f"{path / 'labels.csv'} has no label for {key}")
                labels.append(table[key])
        if not samples:
            raise TrtforgeError(f"none of the {len(files)} validation images in {path} could be read")
        return Validation(samples, labels if table is not None else None, str(path))
    if path.suffix.lower() not in (".npz", ".npy"):
        raise TrtforgeError(f"cannot read validation data from {path}: expected an image folder, .npz or .npy")
    from trtforge.precision.sources import CalibrationSource

    source = CalibrationSource(path, input_names, None, num, 1, axes=axes or {})
    return Validation(list(source.batches()), None, str(path))


@dataclass
class _Split:
    calib: Path
    """The calibration images not held out, linked into a folder inside the staging folder."""
    val_files: list[Path]


def _split_calibration(data: Path, stage: Path) -> _Split:
    """Hold out every 5th image of a calibration folder: the rest is linked into ``stage/.calib``
    (removed before the staging folder becomes OUTDIR; with it, if deploy is killed)."""
    from trtforge.data.images import image_files

    files = image_files(data)
    calib, val = _held_out(files)
    if not val:
        raise TrtforgeError(
            f"{data} holds {len(files)} image(s): too few to hold some out for validation; pass --val-data"
        )
    folder = stage / ".calib"
    folder.mkdir()
    for i, file in enumerate(calib):
        os.symlink(file.resolve(), folder / f"{i:06d}{file.suffix.lower()}")
    return _Split(folder, val)


# --------------------------------------------------------------------------- accuracy


def _drop(acc: Mapping[str, float | None], ref: Mapping[str, float | None]) -> float | None:
    top1, ref_top1 = acc.get("top1_accuracy"), ref.get("top1_accuracy")
    if top1 is not None and ref_top1 is not None:
        return round((ref_top1 - top1) * 100.0, 4)
    agreement = acc.get("agreement", acc.get("top1_agreement"))
    return None if agreement is None else round((1.0 - agreement) * 100.0, 4)


# --------------------------------------------------------------------------- the run


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _quote(*words: object) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def _build_command(
    onnx: str, engine: str, precision: Precision, options: DeployOptions, calibration: CalibrationConfig | None
) -> str:
    words: list[object] = ["trtforge", "build", onnx, "-o", engine, "--precision", precision]
    if options.backend != "onnxruntime" or options.device != "cpu":
        words += ["--backend", options.backend, "--device", options.device]
    if calibration is not None and precision is Precision.INT8:
        if calibration.data is not None:
            words += ["--calib-data", calibration.data]
        spec = calibration.preprocess.spec if calibration.preprocess else None
        if spec:
            words += ["--preprocess", spec]
        words += ["--calib-method", calibration.method, "--calib-num", calibration.num]
        if not calibration.bias_correction:
            words.append("--no-bias-correction")
        if not calibration.equalize:
            words.append("--no-equalize")
        if calibration.reduce_range:
            words.append("--reduce-range")
        if options.max_accuracy_drop is not None:
            words += [
                "--max-accuracy-drop",
                options.max_accuracy_drop,
                "--val-data",
                Path(engine).parent / "validation.npz",
                "--val-num",
                "1000000",
            ]
    return _quote(*words)


STAGE_MARK = "trtforge-deploy-"
STAGE_PATTERN = re.compile(rf"\..+\.{STAGE_MARK}([0-9]{{1,7}})-[a-z0-9_]{{8}}")
"""``.OUTDIR.trtforge-deploy-PID-XXXXXXXX``: a deploy's staging folder, named after its process."""


@dataclass
class _Staged:
    """A temporary folder beside the target, named after this process, that becomes the target when
    complete; a later deploy into the same parent folder sweeps those whose process is gone."""

    target: Path
    force: bool
    path: Path = field(init=False)

    def __post_init__(self) -> None:
        if self.target.exists() and not self.target.is_dir():
            raise TrtforgeError(f"{self.target} exists and is not a folder; choose another -o")
        if self.target.is_dir() and any(self.target.iterdir()) and not self.force:
            raise TrtforgeError(f"{self.target} exists and is not empty; remove it or pass --force to replace it")
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        sweep_dead(parent, STAGE_PATTERN)  # the staging folders of deploys that were killed
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.{STAGE_MARK}{os.getpid()}-", dir=parent))

    def commit(self) -> None:
        if self.target.exists():
            shutil.rmtree(self.target)
        os.replace(self.path, self.target)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _staged_inputs(
    source: Path, options: DeployOptions, stage: Path, final: Path, commands: list[str]
) -> tuple[Path, str]:
    """Convert (unless ONNX) and reshape; returns (model in stage, its final path as text)."""
    import trtforge

    name = "model.onnx"
    if source.suffix.lower() == ".onnx" and options.source_format in (None, "onnx"):
        shutil.copyfile(source, stage / name)
        _say(f"[deploy] using {source} as is (ONNX)")
    else:
        from trtforge.converters import ConvertOptions

        _say(f"[deploy] converting {source}")
        convert = options.convert if isinstance(options.convert, ConvertOptions) else ConvertOptions()
        trtforge.convert(source, stage / name, convert, options.source_format)
        words: list[object] = ["trtforge", "convert", source, "-o", final / name]
        if options.source_format:
            words += ["--from", options.source_format]
        commands.append(_quote(*words, *convert.cli_args()))
    if options.batch is None:
        return stage / name, str(final / name)
    shaped = f"model-bs{options.batch}.onnx"
    _say(f"[deploy] reshaping to batch {options.batch}")
    trtforge.reshape(stage / name, stage / shaped, batch=options.batch)
    commands.append(_quote("trtforge", "reshape", final / name, "-o", final / shaped, "--batch", options.batch))
    return stage / shaped, str(final / shaped)


def _validation(
    model: Path, options: DeployOptions, stage: Path
) -> tuple[Validation, CalibrationConfig | None, _Split | None]:
    from trtforge.graph.batch import batch_axes
    from trtforge.graph.model import graph_inputs, load

    inputs = graph_inputs(load(model))
    names, axes = [t.name for t in inputs], batch_axes(inputs)
    calibration = options.calibration
    preprocess = options.preprocess or (calibration.preprocess if calibration else None)
    if preprocess is not None and len(inputs) == 1:
        preprocess = preprocess.resolve(inputs[0])  # once, against the model deployed
    if options.val_data is not None:
        return load_validation(options.val_data, names, preprocess, options.val_num, axes=axes), calibration, None
    data = calibration.data if calibration else None
    if data is None:
        raise TrtforgeError(
            "no validation data: pass --val-data DIR|FILE.npz, or --calib-data DIR "
            "(every 5th image is then held out for validation)"
        )
    if not data.is_dir():
        raise TrtforgeError(
            f"--calib-data {data} is not an image folder, so no part of it can be held out; pass --val-data FILE.npz"
        )
    split = _split_calibration(data, stage)
    assert calibration is not None
    validation = load_validation(data, names, preprocess, options.val_num, split.val_files, axes=axes)
    validation.source = f"{data} (every {HOLDOUT_EVERY}th image, held out of calibration)"
    return validation, replace(calibration, data=split.calib), split


def _check_request(src: Path, options: DeployOptions) -> None:
    """What can be refused before any work: the source, the validation data's path, the backend."""
    from trtforge.backends.base import get_backend

    if src.suffix.lower() == ".onnx" and not src.exists():
        raise TrtforgeError(f"model to deploy not found: {src}")
    if src.suffix.lower() != ".onnx":
        from trtforge.converters import check_source, detect_format

        check_source(src)
        if options.source_format is None:
            detect_format(src)
    val = options.val_data
    if val is not None and not val.exists():
        raise TrtforgeError(f"validation data not found: {val}")
    if val is not None and not val.is_dir() and val.suffix.lower() not in (".npz", ".npy"):
        raise TrtforgeError(f"cannot read validation data from {val}: expected an image folder, .npz or .npy")
    get_backend(options.backend)


def deploy(
    source: str | os.PathLike[str], outdir: str | os.PathLike[str], options: DeployOptions | None = None
) -> DeployReport:
    """Convert, shape, build every precision, validate against FP32, bench, and write ``outdir``."""
    options = options or DeployOptions()
    src = Path(source)
    _check_request(src, options)
    final = Path(outdir)
    calib = options.calibration
    check_folder_output(
        "-o", final, [src, options.val_data, calib.data if calib else None, calib.cache if calib else None]
    )
    staged = _Staged(final, options.force)
    try:
        commands: list[str] = []
        model, model_text = _staged_inputs(src, options, staged.path, final, commands)
        validation, calibration, split = _validation(model, options, staged.path)
        engines = list(_engines(model, model_text, options, calibration, validation, staged.path, final, commands))
        if split is not None:
            shutil.rmtree(split.calib)
        selected = _select(engines, options, staged.path)
        report = DeployReport(
            final,
            model_text,
            engines,
            selected,
            {
                "source": validation.source,
                "samples": len(validation.samples),
                "labels": validation.labels is not None,
                "reference": "fp32 engine",
            },
            commands,
            _settings(options),
        )
        _write_report(report, staged.path)
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    return report


def _engines(
    model: Path,
    model_text: str,
    options: DeployOptions,
    calibration: CalibrationConfig | None,
    validation: Validation,
    stage: Path,
    final: Path,
    commands: list[str],
) -> Iterator[EngineReport]:
    from trtforge.bench import BenchSettings

    order = [Precision.FP32] + [p for p in options.precisions if p is not Precision.FP32]
    settings = options.bench if isinstance(options.bench, BenchSettings) else BenchSettings()
    if options.device == "cuda":  # each engine timed as it runs best: a CUDA graph where it can hold one
        settings = replace(settings, cuda_graph=True)
    measure = _Measure(validation, settings)
    for precision in order:
        name = f"model-{precision}.engine"
        config = BuildConfig(
            precision=precision,
            backend=options.backend,
            device=options.device,
            calibration=calibration if precision is Precision.INT8 else None,
            allow_inaccurate=precision is Precision.INT8,
        )  # deploy judges accuracy itself, on the validation data
        _say(f"[deploy] building {precision} ({options.backend}, {options.device})")
        started = time.perf_counter()
        mixed = _build_engine(model, stage / name, config, options, validation, stage)
        build_s = time.perf_counter() - started
        commands.append(_build_command(model_text, str(final / name), precision, options, options.calibration))
        report = measure(stage / name, str(precision), build_s, options, commands, final)
        if precision not in options.precisions:
            continue  # the FP32 reference was built only to compare against
        report.mixed = mixed
        yield report
        if mixed and "failed" not in mixed and _changed(mixed):
            yield _all_int8(model, model_text, config, options, stage, final, commands, measure)


def _changed(mixed: Mapping[str, object]) -> bool:
    """Whether the budgeted build differs from plain INT8 (units kept float, or dropped for speed)."""
    speed = mixed.get("speed")
    dropped = speed.get("dropped") if isinstance(speed, dict) else None
    return bool(mixed.get("kept_float") or dropped)


def _all_int8(
    model: Path,
    model_text: str,
    config: BuildConfig,
    options: DeployOptions,
    stage: Path,
    final: Path,
    commands: list[str],
    measure: _Measure,
) -> EngineReport:
    """Plain INT8 as a candidate of its own beside the mix, for the Pareto table."""
    import trtforge

    name = "model-int8-all.engine"
    _say("[deploy] building plain int8 (every unit INT8), to compare with the mix")
    started = time.perf_counter()
    trtforge.build(model, stage / name, config)
    build_s = time.perf_counter() - started
    plain = replace(options, max_accuracy_drop=None)
    commands.append(_build_command(model_text, str(final / name), Precision.INT8, plain, options.calibration))
    return measure(stage / name, "int8-all", build_s, options, commands, final)


@dataclass
class _Measure:
    """Validate an engine against the FP32 engine (the first measured) and bench it."""

    validation: Validation
    settings: BenchSettings
    reference: list[list[np.ndarray]] | None = None
    ref_acc: dict[str, float | None] = field(default_factory=dict)

    def __call__(
        self, engine: Path, label: str, build_s: float, options: DeployOptions, commands: list[str], final: Path
    ) -> EngineReport:
        import trtforge

        runner = trtforge.load(engine)
        outputs = run_all(runner, self.validation.samples)
        first = self.reference is None
        if self.reference is None:
            self.reference = outputs
        names = [o.name for o in runner.outputs]
        acc = accuracy(outputs, self.reference, self.validation.labels, names, options.metric)
        if first:
            self.ref_acc = acc
        _say(f"[deploy] benchmarking {label}")
        # Timed on the first validation sample: real values (a sample rate that picks the model's
        # branch) at real sizes (dims other than the batch left dynamic), not random ones.
        result = trtforge.bench(runner, self.validation.samples[0], settings=self.settings)
        graph = ["--cuda-graph"] if self.settings.cuda_graph else []
        commands.append(
            _quote("trtforge", "bench", final / engine.name, "--duration", self.settings.duration_s, *graph)
        )
        report = EngineReport(
            label,
            engine.name,
            engine.stat().st_size,
            round(build_s, 3),
            result.latency.median,
            result.latency.percentiles.get(99.0, result.latency.max),
            result.qps,
            result.samples_per_s,
            acc,
            0.0 if first else _drop(acc, self.ref_acc),
        )
        report.passed, report.verdict = _judge(report, options.max_accuracy_drop)
        manifest = json.loads(Path(f"{engine}.json").read_text())
        build = manifest.get("build", {})
        report.backend = str(manifest.get("backend", ""))
        report.auto_ms = (build.get("auto") or {}).get("median_ms")
        report.notes = engine_notes(build) + _vnni_only(engine)
        report.refused = options.max_accuracy_drop is None and self_check_failed(build)
        return report


def _build_engine(
    model: Path, engine: Path, config: BuildConfig, options: DeployOptions, validation: Validation, stage: Path
) -> dict[str, object] | None:
    """Build ``engine``; INT8 with a budget searches a mixed model first (top-1 changes vs FP32 on the
    validation samples), and falls back to plain INT8, saying so, when no mix meets the budget."""
    import trtforge
    from trtforge.errors import VerificationError

    if config.precision is not Precision.INT8 or options.max_accuracy_drop is None:
        trtforge.build(model, engine, config)
        return None
    val = stage / "validation.npz"  # kept in OUTDIR: the recorded build command reads it
    np.savez(val, **{k: np.concatenate([s[k] for s in validation.samples]) for k in validation.samples[0]})
    mixed = replace(
        config,
        max_accuracy_drop=options.max_accuracy_drop,
        validation=val,
        metric="top1",
        val_num=len(validation.samples),
    )
    try:
        trtforge.build(model, engine, mixed)
    except VerificationError as exc:
        _say(f"[deploy] mixed INT8: {exc}; building plain INT8 for the report")
        trtforge.build(model, engine, config)
        return {"failed": str(exc)}
    facts = json.loads(Path(f"{engine}.json").read_text())["build"].get("mixed")
    return facts if isinstance(facts, dict) else None


def _judge(report: EngineReport, limit: float | None) -> tuple[bool | None, str]:
    if limit is None:
        return None, "no --max-accuracy-drop given"
    if report.drop_points is None:
        return False, "no agreement measure for these outputs (see --metric)"
    if report.drop_points <= limit:
        return True, f"drop {report.drop_points:.2f} ≤ {limit:g} points"
    return False, f"drop {report.drop_points:.2f} > {limit:g} points"


def self_check_failed(build: Mapping[str, object]) -> bool:
    check = build.get("check")
    return isinstance(check, dict) and check.get("checked") is True and check.get("passed") is False


def engine_notes(build: Mapping[str, object]) -> list[str]:
    """What an engine's manifest (its ``build`` section) says costs it speed or trust: nodes ONNX
    Runtime placed on the CPU provider of a CUDA engine (``cpu_nodes``), no CUDA graph on a GPU,
    a failed INT8 self-check against FP32 (``check``)."""
    notes = []
    cpu = build.get("cpu_nodes")
    if isinstance(cpu, list) and cpu:
        names = ", ".join(map(str, cpu[:3])) + (", ..." if len(cpu) > 3 else "")
        notes.append(
            f"{len(cpu)} node(s) placed on the CPU by ONNX Runtime ({names}): host-device copies on every query"
        )
    if build.get("device") == "cuda" and build.get("cuda_graph") is False:
        notes.append("no CUDA graph" + (" (nodes on the CPU rule one out)" if isinstance(cpu, list) and cpu else ""))
    if self_check_failed(build):
        check = build["check"]
        assert isinstance(check, dict)
        failed = [str(o.get("name")) for o in check.get("outputs", []) if isinstance(o, dict) and not o.get("passed")]
        notes.append(f"failed its INT8 self-check against FP32 ({', '.join(failed) or 'see its manifest'})")
    return notes


def _vnni_only(engine: Path) -> list[str]:
    """An ONNX Runtime CPU INT8 engine with 8-bit weights runs on CPUs with VNNI only: a note where it applies."""
    from trtforge.backends.onnxruntime import vnni_only_note
    from trtforge.engine import read_manifest

    note = vnni_only_note(read_manifest(engine))
    return [] if note is None else [note]


def explain(engines: list[EngineReport], selected: str | None, select: str | None) -> None:
    """Set each engine's ``why``: selected, or what it lost on (accuracy, self-check, speed), then its notes."""
    best = next((e for e in engines if e.engine == selected), None)
    for e in engines:
        reasons: list[str] = []
        if e is best and e.passed:
            head = "selected (the fastest that passed)"
            reasons.append(e.verdict)
        elif e is best:
            head = "selected (the fastest; no --max-accuracy-drop, so accuracy was not judged)"
        else:
            head = "not selected" if select else "not compared (no --select)"
            if e.passed is False:
                reasons.append(f"failed its accuracy budget ({e.verdict})")
            if e.refused:
                reasons.append("refused by its INT8 self-check (no --max-accuracy-drop to judge it by instead)")
            if best is not None and e.median_ms >= best.median_ms:
                reasons.append(
                    f"slower ({e.median_ms:.4f} ms median against {best.median_ms:.4f} ms for {best.precision})"
                )
        parts = [r for r in reasons + e.notes if r]
        e.why = head + (": " + "; ".join(parts) if parts else "")


def _select(engines: list[EngineReport], options: DeployOptions, stage: Path) -> str | None:
    if options.select != "fastest":
        explain(engines, None, None)
        return None
    candidates = [e for e in engines if e.passed is not False and not e.refused]
    if not candidates:
        explain(engines, None, options.select)
        raise TrtforgeError(
            "no engine passed its accuracy check, so none was selected: "
            + " | ".join(f"{e.precision}: {e.why.removeprefix('not selected: ')}" for e in engines)
            + " (raise --max-accuracy-drop or add a precision)"
        )
    best = min(candidates, key=lambda e: e.median_ms)
    shutil.copyfile(stage / best.engine, stage / "model.engine")
    shutil.copyfile(stage / f"{best.engine}.json", stage / "model.engine.json")
    explain(engines, best.engine, options.select)
    return best.engine


def _settings(options: DeployOptions) -> dict[str, object]:
    bench, cuda = options.bench, options.device == "cuda"  # a CUDA graph where the engine can hold one
    return {
        "backend": options.backend,
        "device": options.device,
        "batch": options.batch,
        "precisions": [str(p) for p in options.precisions],
        "max_accuracy_drop": options.max_accuracy_drop,
        "bench": (
            {**{k: getattr(bench, k) for k in ("warmup_ms", "iterations", "duration_s")}, "cuda_graph": cuda}
            if bench
            else None
        ),
        "command": options.command,
    }


# --------------------------------------------------------------------------- the report


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def _agreement_text(acc: Mapping[str, float | None]) -> str:
    """The worst output's agreement, then each output's when there are several."""
    per = {k[len("agreement[") : -1]: v for k, v in acc.items() if k.startswith("agreement[")}
    text = _fmt(acc.get("agreement", acc.get("top1_agreement")), ".2%")
    if len(per) > 1:
        text += " (" + ", ".join(f"{k} {_fmt(v, '.0%')}" for k, v in per.items()) + ")"
    return text


def report_table(report: DeployReport) -> str:
    rows = [
        "| precision | top-1 | agreement with fp32 | max abs error | drop (points) | pass | "
        "median (ms) | p99 (ms) | throughput (qps) | size (KiB) | build (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in report.engines:
        mark = {True: "yes", False: "no", None: "–"}[e.passed]
        if report.selected == e.engine:
            mark += " (selected)"
        rows.append(
            f"| {e.precision} | {_fmt(e.accuracy.get('top1_accuracy'), '.2%')} | "
            f"{_agreement_text(e.accuracy)} | {_fmt(e.accuracy.get('max_abs_error'), '.3g')} | "
            f"{_fmt(e.drop_points, '.2f')} | {mark} | {e.median_ms:.4f} | {e.p99_ms:.4f} | {e.qps:,.0f} | "
            f"{e.size_bytes / 1024:,.1f} | {e.build_s:.2f} |"
        )
    return "\n".join(rows)


def report_why(report: DeployReport) -> str:
    """One line per engine: why it was selected or not, and what its manifest notes."""
    return "\n".join(f"{e.precision}: {e.why}" for e in report.engines)


def _markdown(report: DeployReport) -> str:
    v = report.validation
    lines = [
        f"# trtforge deploy: {report.onnx}",
        "",
        f"Validation: {v['samples']} samples from {v['source']}; reference: the fp32 engine; "
        f"top-1 {'against labels' if v['labels'] else 'not measured (no labels.csv)'}.",
        "",
        report_table(report),
        "",
    ]
    if report.selected:
        lines += [f"Selected: `{report.selected}` (fastest passing), copied to `model.engine`.", ""]
    lines += ["## Why", "", *(f"- **{e.precision}** (`{e.engine}`): {e.why}" for e in report.engines), ""]
    lines += _pareto_markdown(report)
    lines += auto_table(report)
    lines += _mixed_markdown(report)
    lines += ["## Reproduce", "", "```", *report.commands, "```", ""]
    if "held out" in str(v["source"]):
        lines += [
            f"deploy calibrated on the images of the calibration folder that were not held out "
            f"(all but every {HOLDOUT_EVERY}th); `trtforge build` above calibrates on the whole folder.",
            "",
        ]
    if report.settings.get("command"):
        lines += ["This report was written by:", "", "```", str(report.settings["command"]), "```", ""]
    return "\n".join(lines)


def auto_table(report: DeployReport) -> list[str]:
    """``--backend auto``: every CPU backend timed at build, per precision, and the one kept."""
    timed = [(e, e.auto_ms) for e in report.engines if e.auto_ms]
    if not timed:
        return []
    names = sorted({name for _, ms in timed for name in ms})
    lines = [
        "## --backend auto",
        "",
        "Each engine was built with every CPU backend, timed at build (alternating rounds, batch 1, "
        "random inputs; `build.auto` in its manifest) and the faster kept. Median ms:",
        "",
        f"| precision | {' | '.join(names)} | kept |",
        "|---" * (len(names) + 2) + "|",
    ]
    for e, ms in timed:
        lines.append(f"| {e.precision} | {' | '.join(_fmt(ms.get(n), '.3f') for n in names)} | {e.backend} |")
    return [*lines, ""]


def _candidate_label(e: EngineReport) -> str:
    m = e.mixed
    if e.precision == "int8-all":
        return "int8, every unit INT8"
    if not m or "failed" in m or not _changed(m):
        return e.precision
    kept = m.get("kept_float")
    speed = m.get("speed")
    dropped = speed.get("dropped", []) if isinstance(speed, dict) else []
    count = sum(1 + len(u["with"]) for u in kept) if isinstance(kept, list) else 0
    return (
        f"int8 mixed: {count} unit(s) {str(m.get('kept_precision', 'fp32')).upper()}"
        + (f", {len(dropped)} float for speed" if dropped else "")
        + f" of {m.get('units')}"
    )


def pareto_front(engines: list[EngineReport]) -> set[str]:
    """Engines no other beats on both accuracy drop and median latency (unknown drops never are)."""
    known = [e for e in engines if e.drop_points is not None]
    return {
        e.engine
        for e in known
        if not any(
            o is not e
            and o.drop_points <= e.drop_points  # type: ignore[operator]
            and o.median_ms <= e.median_ms
            and (o.drop_points < e.drop_points or o.median_ms < e.median_ms)  # type: ignore[operator]
            for o in known
        )
    }


def _pareto_markdown(report: DeployReport) -> list[str]:
    """Every candidate built, accuracy against latency, fastest first; the Pareto-optimal ones marked."""
    if len(report.engines) < 2:
        return []
    front = pareto_front(report.engines)
    lines = [
        "## Accuracy vs latency (Pareto)",
        "",
        "Each candidate deploy built, on the same validation samples and bench; *on the front*: no other "
        "candidate is both at least as accurate and at least as fast.",
        "",
        "| candidate | engine | drop (points) | median (ms) | on the front |",
        "|---|---|---|---|---|",
    ]
    for e in sorted(report.engines, key=lambda e: e.median_ms):
        lines.append(
            f"| {_candidate_label(e)} | `{e.engine}` | {_fmt(e.drop_points, '.2f')} | {e.median_ms:.4f} | "
            f"{'yes' if e.engine in front else 'no'} |"
        )
    return [*lines, ""]


def _mixed_markdown(report: DeployReport) -> list[str]:
    """The mixed-precision search's candidates (accuracy vs latency), where INT8 had a budget."""
    lines: list[str] = []
    for e in report.engines:
        m = e.mixed
        if not m:
            continue
        if "failed" in m:
            lines += ["## Mixed INT8", "", f"No mix met the budget: {m['failed']}", ""]
            continue
        err, lat = m["error"], m["latency_ms"]
        assert isinstance(err, dict) and isinstance(lat, dict) and isinstance(m["kept_float"], list)
        kept = str(m.get("kept_precision", "fp32")).upper()
        lines += [
            "## Mixed INT8 search (--max-accuracy-drop)",
            "",
            f"{sum(1 + len(u['with']) for u in m['kept_float'])} of {m['units']} unit(s) kept {kept} "
            f"({m.get('kept_precision_why', '')}); "
            f"changed top-1 answers vs fp32 in points, measured by the search on the Q/DQ graphs; latency: "
            f"{m['latency_measured']}."
            + (
                f" INT8 share of the mix: {m['int8_compute_fraction']:.0%} of the Conv/Gemm/MatMul "
                "multiply-accumulates."
                if isinstance(m.get("int8_compute_fraction"), float)
                else ""
            ),
            "",
            "| search candidate | top-1 changed (points) | latency (ms) |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {err[k]:.2f} | {lat[k]:.3f} |" for k in ("fp32", "int8", "mixed")]
        tried = m.get("tried")
        if isinstance(tried, list) and tried:
            lines += ["", "| step | kind | unit | top-1 changed after | taken |", "|---|---|---|---|---|"]
            lines += [
                f"| {i} | {_STEP_WORDS.get(str(t.get('step', 'alone')), t.get('step'))} | `{t['name']}` | "
                f"{t['error_after']:.2f} | {'yes' if t['kept'] else 'no'} |"
                for i, t in enumerate(tried, 1)
            ]
        lines += ["", f"| unit kept {kept} | op | layer | alone | gain |", "|---|---|---|---|---|"]
        lines += [
            f"| `{u['name']}` | {u['op_type']} | {u['layer'] or '-'} | {u['error_alone']:.2f} | {u['gain']:.2f} |"
            for u in m["kept_float"]
        ]
        lines += _speed_markdown(m.get("speed"))
        lines.append("")
    return lines


_STEP_WORDS = {
    "alone": "out of INT8 if it helps alone",
    "cumulative": "out of INT8 with those before it",
    "pruned": "back to INT8 if the budget holds",
    "border": "reads INT8 input (producer back to INT8)",
}


def _speed_markdown(speed: object) -> list[str]:
    if not isinstance(speed, dict):
        return []
    if not speed.get("measured"):
        return ["", f"Speed-aware dropping: not measured here ({speed.get('how')})."]
    lines = ["", f"Speed-aware dropping: {speed.get('how')}."]
    dropped = speed.get("dropped") or []
    if dropped:
        lines += ["", "| unit float for speed | INT8 (ms) | float (ms) | top-1 changed after |", "|---|---|---|---|"]
        lines += [
            f"| `{d['name']}` | {d['int8_ms']:.4f} | {d['float_ms']:.4f} | {d['error_after']:.2f} |" for d in dropped
        ]
    return lines


def _plots(report: DeployReport, stage: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _say("[deploy] warning: matplotlib is not installed, so no plots were drawn (pip install matplotlib)")
        return []
    names = [e.precision for e in report.engines]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(names, [e.median_ms for e in report.engines], color="#4c72b0", label="median")
    ax.scatter(names, [e.p99_ms for e in report.engines], color="#c44e52", zorder=3, label="p99")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency by precision")
    ax.legend()
    fig.tight_layout()
    fig.savefig(stage / "latency.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    key = "top1_accuracy" if report.validation["labels"] else "agreement"
    for e in report.engines:
        y = e.accuracy.get(key)
        if y is not None:
            ax.scatter(e.median_ms, y * 100.0)
            ax.annotate(e.precision, (e.median_ms, y * 100.0), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel("top-1 accuracy (%)" if key == "top1_accuracy" else "agreement with fp32 (%)")
    ax.set_title("Accuracy vs latency")
    fig.tight_layout()
    fig.savefig(stage / "accuracy_vs_latency.png", dpi=100)
    plt.close(fig)
    return ["latency.png", "accuracy_vs_latency.png", *_sensitivity_plot(report, stage)]


def _sensitivity_plot(report: DeployReport, stage: Path) -> list[str]:
    """The INT8 search's per-unit errors in graph order, where it ran."""
    from trtforge.precision.mixed import SensitivityResult, Unit, UnitError, plot

    mixed = next((e.mixed for e in report.engines if e.mixed and "ranking" in e.mixed), None)
    if mixed is None:
        return []
    ranking, errors = mixed["ranking"], mixed["error"]
    assert isinstance(ranking, list) and isinstance(errors, dict)
    result = SensitivityResult(
        str(mixed["metric"]),
        "",
        str(mixed["scheme"]),
        int(str(mixed["samples"])),
        float(errors["int8"]),
        tuple(
            UnitError(Unit(r["name"], r["op_type"], (r["name"],), r["layer"], i), r["error"])
            for i, r in enumerate(ranking)
        ),
        {},
    )
    plot(result, stage / "sensitivity.png")
    return ["sensitivity.png"]


def _write_report(report: DeployReport, stage: Path) -> None:
    plots = _plots(report, stage)
    text = _markdown(report)
    if plots:
        text += "\n" + "\n".join(f"![{p}]({p})" for p in plots) + "\n"
    (stage / "report.md").write_text(text)
    (stage / "report.json").write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
