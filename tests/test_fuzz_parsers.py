"""Property-based fuzzing of every parser of user strings: only TrtforgeError may escape.

``make test`` runs the fast profile (a few seconds); ``TRTFORGE_FUZZ=long`` runs 30x the
examples (``TRTFORGE_FUZZ=long pytest tests/test_fuzz_parsers.py``).  Every parser call is
counted per property; ``TRTFORGE_FUZZ_REPORT=FILE`` writes the counts there as JSON at the end.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trtforge import numbers
from trtforge.cli import parse as cli_parse
from trtforge.cli.trtexec.flags import parse as exec_parse
from trtforge.config import TensorSpec
from trtforge.converters.base import parse_renames, parse_tensor_args
from trtforge.data.preprocess import Preprocess
from trtforge.engine import parse_manifest
from trtforge.errors import TrtforgeError
from trtforge.graph.ranges import InputShapes, ShapeRange, parse_profiles, validate_profiles
from trtforge.graph.shapes import Batch
from trtforge.precision.cache import CacheFacts, CalibrationCache
from trtforge.precision.ioformat import parse_formats

settings.register_profile("fast", max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("long" if os.environ.get("TRTFORGE_FUZZ") == "long" else "fast")

# Characters that matter to these grammars, plus look-alikes (superscripts, full-width digits).
_ALPHABET = " x:,=/.-+*0123456789eEnaifINFtyrgbwhlcdpmsk_[]?²５٣\u00a0\t"
TEXT = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=_ALPHABET, max_size=60),
    st.builds(lambda a, b: a + "9" * b, st.text(alphabet=_ALPHABET, max_size=8), st.integers(0, 5000)),
)
SPECS = [TensorSpec("x", "float32", (-1, 3, 4, 4)), TensorSpec("ids", "int64", ("N", 7))]


CALLS: Counter[str] = Counter()
"""Parser calls made, per property (the test function the call was made from)."""
ESCAPES: Counter[str] = Counter()


def _only_user_errors(fn: Callable[[], object]) -> None:
    CALLS[fn.__qualname__.split(".")[0]] += 1
    try:
        fn()
    except TrtforgeError:
        pass
    except BaseException:
        ESCAPES[fn.__qualname__.split(".")[0]] += 1
        raise


@pytest.fixture(scope="module", autouse=True)
def _report_calls() -> Iterator[None]:
    yield
    path = os.environ.get("TRTFORGE_FUZZ_REPORT")
    if path:
        totals = {"calls": sum(CALLS.values()), "escapes": sum(ESCAPES.values())}
        report = {**totals, "per_property": dict(CALLS), "escapes_per_property": dict(ESCAPES)}
        with open(path, "w") as f:
            json.dump(report, f, indent=2)


@given(TEXT)
def test_numbers(text: str) -> None:
    _only_user_errors(lambda: numbers.integer(text, "--n", 0, 100))
    _only_user_errors(lambda: numbers.real(text, "--r", 0, 1e9, fraction=True))


@given(TEXT)
def test_preprocess(text: str) -> None:
    _only_user_errors(lambda: Preprocess.parse(text))
    _only_user_errors(lambda: Preprocess.parse(f"resize={text}"))
    _only_user_errors(lambda: Preprocess.parse(f"scale={text},mean={text}"))


@given(TEXT)
def test_shapes_and_profiles(text: str) -> None:
    _only_user_errors(lambda: Batch.parse(text))
    _only_user_errors(lambda: InputShapes.parse(text).validate(SPECS))
    _only_user_errors(lambda: ShapeRange.fixed(text).validate(SPECS))
    _only_user_errors(lambda: validate_profiles([ShapeRange.parse(text, text, text)], SPECS))
    _only_user_errors(lambda: parse_profiles([text], [text], [text]))
    _only_user_errors(lambda: parse_tensor_args(text))
    _only_user_errors(lambda: parse_renames(text))


@given(TEXT)
def test_io_formats_and_memory_pools(text: str) -> None:
    _only_user_errors(lambda: parse_formats(text))
    _only_user_errors(lambda: cli_parse.mem_pools(text, "--memPoolSize"))
    _only_user_errors(lambda: cli_parse.mem_pools(f"workspace:{text}", "--memPoolSize"))
    _only_user_errors(lambda: cli_parse.percentiles(text))


_EXEC_FLAGS = [
    "--onnx",
    "--shapes",
    "--minShapes",
    "--memPoolSize",
    "--workspace",
    "--iterations",
    "--duration",
    "--warmUp",
    "--streams",
    "--inputIOFormats",
    "--builderOptimizationLevel",
    "--percentile",
    "--avgRuns",
    "--loadInputs",
    "--fp16",
    "--int8",
    "--noSuchFlag",
]


@given(st.lists(st.tuples(st.sampled_from(_EXEC_FLAGS), TEXT), max_size=4))
def test_trtexec_flags(flags: list[tuple[str, str]]) -> None:
    _only_user_errors(lambda: exec_parse([f"{flag}={value}" for flag, value in flags]))


@given(TEXT, TEXT)
def test_cache_lines(header: str, line: str) -> None:
    _only_user_errors(lambda: CalibrationCache.from_text(f"{header}\n{line}\n"))
    _only_user_errors(lambda: CalibrationCache.from_text(f"TRT-100300-EntropyCalibration2\n{line}\n"))


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12,
)
_MANIFEST_KEYS = [
    "format_version",
    "backend",
    "backend_version",
    "precision",
    "device",
    "inputs",
    "outputs",
    "build",
    "calibration",
    "source_sha256",
    "engine_sha256",
    "trtforge_version",
    "created",
]


@given(
    st.one_of(
        st.binary(max_size=80),
        JSON.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(_MANIFEST_KEYS), JSON).map(lambda v: json.dumps(v).encode()),
    )
)
def test_manifest_json(raw: bytes) -> None:
    from pathlib import Path

    _only_user_errors(lambda: parse_manifest(raw, Path("m.engine.json")))


@given(st.dictionaries(st.sampled_from(["model_sha256", "method", "preprocess", "samples", "data", "ranges"]), JSON))
def test_cache_sidecar_json(data: dict[str, object]) -> None:
    _only_user_errors(lambda: CacheFacts.from_json(data, "c.cache.json"))


@given(TEXT)
def test_choices_lists_and_addresses(text: str) -> None:
    from trtforge.config import CalibMethod, Precision
    from trtforge.serve.client import server_url
    from trtforge.serve.triton_config import InstanceKind, ServingBackend

    for choice in (Precision, CalibMethod, ServingBackend, InstanceKind):
        _only_user_errors(lambda c=choice: c.parse(text))
    _only_user_errors(lambda: server_url(text))
    _only_user_errors(lambda: [numbers.integer(c, "--concurrency", 1, 4096) for c in cli_parse.names(text)])
    _only_user_errors(lambda: tuple(Precision.parse(p) for p in text.split(",") if p.strip()))
    if ".py" not in text:  # FILE.py:function imports the file: not something to fuzz
        from trtforge.precision.mixed import metric_from

        _only_user_errors(lambda: metric_from(text))


@pytest.mark.parametrize("text", ["resize=²x2", "scale=1e400", "mean=nan", "std=0", f"resize={'9' * 5000}x2"])
def test_known_hostile_preprocess_strings(text: str) -> None:
    with pytest.raises(TrtforgeError):
        Preprocess.parse(text)
