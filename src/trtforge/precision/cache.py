"""TensorRT's calibration cache, in its own text format.

::

    TRT-100300-EntropyCalibration2
    input_1: 3c010a14
    conv1/Relu:0: 3d8b4c2a

The first line names the TensorRT version and the calibrator; every other line is a tensor
name, a colon and the scale as the bit pattern of a float32 in hex.  TensorRT prints that
pattern without leading zeros (a zero scale is written ``0``); trtforge writes all 8 digits,
which TensorRT reads the same.  The dynamic range of the tensor is ``127 * scale``.  Names may
themselves hold ``:``, so a line is split at its last colon.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trtforge._files import read_pair, write_pair, write_text_atomic
from trtforge.errors import TrtforgeError

# trtforge's calibration methods -> the calibrator names TensorRT writes.
CALIBRATOR_NAMES = {
    "entropy": "EntropyCalibration2",
    "minmax": "MinMaxCalibration",
    "percentile": "PercentileCalibration",
    "mse": "MSECalibration",
}
DEFAULT_VERSION = "100300"  # TensorRT 10.3, the version JetPack 6 ships


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    """1 to 8 hex digits of a float32's bit pattern -> the float (``ValueError`` if not hex)."""
    if not 1 <= len(text) <= 8 or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(text)
    return float(struct.unpack(">f", int(text, 16).to_bytes(4, "big"))[0])


@dataclass(frozen=True)
class CalibrationCache:
    """A header (``TRT-<version>-<Calibrator>``) and a scale per tensor name."""

    header: str
    scales: dict[str, float] = field(default_factory=dict)

    @property
    def calibrator(self) -> str:
        return self.header.rsplit("-", 1)[-1]

    def dynamic_range(self, name: str) -> float:
        return 127.0 * self.scales[name]

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Symmetric (min, max) per tensor, the form the Q/DQ stage consumes."""
        return {name: (-127.0 * s, 127.0 * s) for name, s in self.scales.items()}

    @classmethod
    def from_ranges(
        cls, method: str, ranges: Mapping[str, tuple[float, float]], version: str = DEFAULT_VERSION
    ) -> CalibrationCache:
        calibrator = CALIBRATOR_NAMES.get(method, method)
        # float32 scales, as the text holds them, so a written cache reads back equal
        scales = {name: hex_to_scale(scale_to_hex(max(abs(lo), abs(hi)) / 127.0)) for name, (lo, hi) in ranges.items()}
        return cls(f"TRT-{version}-{calibrator}", scales)

    def to_text(self) -> str:
        lines = [self.header, *(f"{name}: {scale_to_hex(s)}" for name, s in self.scales.items())]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, source: str = "calibration cache") -> CalibrationCache:
        lines = text.splitlines()
        if not lines or not lines[0].startswith("TRT-") or lines[0].count("-") < 2:
            first = lines[0] if lines else ""
            raise TrtforgeError(f"{source}: line 1 is {first!r}, expected a header like TRT-100300-EntropyCalibration2")
        scales: dict[str, float] = {}
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            name, sep, value = line.rpartition(":")
            value = value.strip()
            if not sep or not name or not value:
                raise TrtforgeError(
                    f"{source}: line {number} is {line!r}, expected 'tensor_name: hex scale' like 'conv1: 3c010a14'"
                )
            try:
                scales[name] = hex_to_scale(value)
            except ValueError:
                raise TrtforgeError(
                    f"{source}: line {number} has {value!r}, which is not a float32 bit pattern in 1 to 8 hex digits"
                ) from None
            if not math.isfinite(scales[name]) or scales[name] < 0:
                raise TrtforgeError(
                    f"{source}: line {number} has scale {scales[name]} for {name!r}; a scale "
                    "must be finite and not negative: recalibrate, or fix that line"
                )
        return cls(lines[0].strip(), scales)


def read_cache(path: str | os.PathLike[str]) -> CalibrationCache:
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise TrtforgeError(f"calibration cache {path} is not text; expected TensorRT's text format") from None
    except OSError as exc:
        raise TrtforgeError(f"cannot read calibration cache {path}: {exc.strerror}") from None
    return CalibrationCache.from_text(text, str(path))


def write_cache(path: str | os.PathLike[str], cache: CalibrationCache) -> None:
    write_text_atomic(path, cache.to_text())


# --- trtforge's own facts beside a cache: FILE.json -------------------------------------------

SIDECAR_FORMAT = "trtforge-calibration-cache/1"


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(path)}.json")


@dataclass(frozen=True)
class CacheFacts:
    """What a cache was calibrated from: the model, the method, the preprocessing, the data."""

    model_sha256: str
    method: str
    preprocess: dict[str, object] | None
    samples: int
    data: str | None = None
    ranges: dict[str, tuple[float, float]] | None = None
    """The exact (min, max) behind each scale: the text format only keeps max(|min|, |max|)."""

    def to_json(self) -> dict[str, object]:
        return {
            "format": SIDECAR_FORMAT,
            "model_sha256": self.model_sha256,
            "method": self.method,
            "preprocess": self.preprocess,
            "samples": self.samples,
            "data": self.data,
            "ranges": {k: list(v) for k, v in (self.ranges or {}).items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, object], source: str) -> CacheFacts:
        """The facts from a sidecar's JSON, each field checked (one error naming the field)."""

        def bad(name: str, expected: str) -> TrtforgeError:
            return TrtforgeError(
                f"{source}: not a valid trtforge calibration sidecar: field {name!r} must be "
                f"{expected}; delete it to use the cache as a TensorRT-written one"
            )

        for name in ("model_sha256", "method"):
            if not isinstance(data.get(name), str):
                raise bad(name, "a string")
        samples = data.get("samples")
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
            raise bad("samples", "a whole number")
        preprocess, source_data = data.get("preprocess"), data.get("data")
        if preprocess is not None and not isinstance(preprocess, dict):
            raise bad("preprocess", "an object or null")
        if source_data is not None and not isinstance(source_data, str):
            raise bad("data", "a string or null")
        ranges = data.get("ranges") or {}
        if not isinstance(ranges, dict) or not all(
            isinstance(v, list) and len(v) == 2 and all(_finite_number(x) for x in v) for v in ranges.values()
        ):
            raise bad("ranges", "an object of [min, max] pairs of finite numbers")
        return cls(
            str(data["model_sha256"]),
            str(data["method"]),
            preprocess,
            samples,
            source_data,
            {str(k): (float(v[0]), float(v[1])) for k, v in ranges.items()},
        )


def _finite_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def write_cache_with_facts(path: str | os.PathLike[str], cache: CalibrationCache, facts: CacheFacts) -> None:
    """The cache in TensorRT's format and ``path.json`` with our facts, as one unit (both or neither)."""
    import json

    write_pair(path, cache.to_text().encode("ascii"), sidecar_path(path), json.dumps(facts.to_json(), indent=2) + "\n")


def read_facts(path: str | os.PathLike[str]) -> CacheFacts | None:
    """The sidecar of cache ``path``, or None when there is none (a cache TensorRT wrote)."""
    import json

    side = sidecar_path(path)
    if not Path(path).is_file():
        return None
    try:
        raw = read_pair(path, side)[2]
        if raw is None:
            return None
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise TrtforgeError(f"cannot read calibration sidecar {side}: {exc}") from None
    if not isinstance(data, dict):
        raise TrtforgeError(f"{side}: not a trtforge calibration sidecar (expected a JSON object)")
    return CacheFacts.from_json(data, str(side))


def _same_preprocess(a: dict[str, object] | None, b: dict[str, object] | None) -> bool:
    def key(p: dict[str, object], drop: set[str]) -> dict[str, object]:
        return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in p.items() if k not in drop}

    if a is None or b is None:
        return True
    # no size: "the model input's size", the same for the same model (checked apart)
    drop = {"spec"} | ({"size"} if a.get("size") is None or b.get("size") is None else set())
    return key(a, drop) == key(b, drop)


def mismatches(facts: CacheFacts, model_sha256: str, preprocess: dict[str, object] | None) -> list[str]:
    """Why a cache with ``facts`` does not belong to this model and preprocessing (empty: it does)."""
    why = []
    if facts.model_sha256 != model_sha256:
        why.append(
            f"it was calibrated for another model (sha256 {facts.model_sha256[:12]}..., "
            f"this one is {model_sha256[:12]}...)"
        )
    if not _same_preprocess(facts.preprocess, preprocess):
        theirs = (facts.preprocess or {}).get("spec") or facts.preprocess
        ours = (preprocess or {}).get("spec") or preprocess
        why.append(f"it was calibrated with other preprocessing ({theirs!r}, now {ours!r})")
    return why


def checked_facts(
    path: str | os.PathLike[str], model_sha256: str, preprocess: dict[str, object] | None, force: bool = False
) -> CacheFacts | None:
    """The facts beside an existing cache ``path``, refused when made for another model or preprocessing.

    Both INT8 paths call this before reading a ``--calib-cache``: the precision stage (Q/DQ) and
    TensorRT 10's calibrator.  A mismatch is a user error unless ``force`` (``--calib-cache-force``),
    which uses the cache with a warning; no sidecar (a cache TensorRT wrote) cannot be checked, so
    it is used with a warning.
    """
    import sys

    known = read_facts(path)
    if known is None:
        print(
            f"warning: {path} has no {sidecar_path(path).name} beside it (a cache TensorRT wrote?), so "
            "trtforge cannot check it was made for this model and preprocessing; using it",
            file=sys.stderr,
        )
        return None
    why = mismatches(known, model_sha256, preprocess)
    if why and not force:
        raise TrtforgeError(
            f"calibration cache {path} does not match: {'; '.join(why)}. Delete it to "
            "recalibrate, or pass --calib-cache-force to use it anyway"
        )
    if why:
        print(f"warning: using {path} although {'; '.join(why)} (--calib-cache-force)", file=sys.stderr)
    return known


def cache_ranges(cache: CalibrationCache, facts: CacheFacts | None) -> dict[str, tuple[float, float]]:
    """Ranges from a cache: the sidecar's exact ones where they agree with the cache's scales."""
    ranges = cache.ranges()
    if facts and facts.ranges:
        for name, (lo, hi) in facts.ranges.items():
            if name in ranges and abs(max(abs(lo), abs(hi)) - ranges[name][1]) <= 1e-6 * max(1.0, ranges[name][1]):
                ranges[name] = (lo, hi)
    return ranges
