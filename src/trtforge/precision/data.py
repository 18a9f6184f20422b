"""Calibration data sources and image preprocessing.

:class:`Preprocess` is the typed form of a ``--preprocess`` string, shared by
calibration, ``run`` and ``compare`` so that the same pixels reach every model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from trtforge.errors import TrtforgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
COLORS = ("gray", "rgb", "bgr")
LAYOUTS = ("nchw", "nhwc")
RESIZE_MODES = ("stretch", "fit", "letterbox")
LETTERBOX_FILL = 114  # the grey YOLO-style letterboxing pads with


def _number(key: str, text: str) -> float:
    try:
        top, slash, bottom = text.strip().partition("/")
        return float(top) / float(bottom) if slash else float(Fraction(top))
    except (ValueError, ZeroDivisionError):
        raise TrtforgeError(f"bad --preprocess value {key}={text!r}: expected a number like 0.5 or 1/255") from None


def _numbers(key: str, text: str) -> tuple[float, ...]:
    return tuple(_number(key, part) for part in text.split(":"))


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes a model input.

    Spec string: comma-separated ``key=value``; keys: ``color`` (gray|rgb|bgr),
    ``resize`` (``WxH``, ``WxH:MODE`` or ``MODE``; without a size the model input's is used),
    ``scale`` (multiplier, ``1/255`` allowed), ``mean`` and ``std``
    (one value or one per channel joined by ``:``, applied after scale as
    ``(x * scale - mean) / std``), ``layout`` (nchw|nhwc), ``dtype`` (float32|float16|uint8).

    Resize modes: ``stretch`` (default) ignores the aspect ratio; ``fit`` scales the shorter
    side to the target and crops the centre; ``letterbox`` scales the longer side to the
    target and pads the rest with grey (114).
    """

    color: str = "rgb"
    size: tuple[int, int] | None = None  # (width, height)
    resize: str = "stretch"
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str = "nchw"
    dtype: str = "float32"
    spec: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Preprocess:
        values: dict[str, object] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not value:
                raise TrtforgeError(f"bad --preprocess item {item!r}: expected key=value")
            if key == "color":
                if value.lower() not in COLORS:
                    raise TrtforgeError(f"bad --preprocess color {value!r}: expected one of {', '.join(COLORS)}")
                values["color"] = value.lower()
            elif key == "resize":
                values.update(_resize(value))
            elif key == "scale":
                values["scale"] = _number(key, value)
            elif key in ("mean", "std"):
                values[key] = _numbers(key, value)
            elif key == "layout":
                if value.lower() not in LAYOUTS:
                    raise TrtforgeError(f"bad --preprocess layout {value!r}: expected nchw or nhwc")
                values["layout"] = value.lower()
            elif key == "dtype":
                if value.lower() not in ("float32", "float16", "uint8"):
                    raise TrtforgeError(f"bad --preprocess dtype {value!r}: expected float32, float16 or uint8")
                values["dtype"] = value.lower()
            else:
                raise TrtforgeError(
                    f"unknown --preprocess key {key!r}; known: color, resize, scale, mean, std, layout, dtype"
                )
        if 0 in values.get("std", (1.0,)):  # type: ignore[operator]
            raise TrtforgeError("bad --preprocess std: a standard deviation of 0 divides by zero")
        return cls(**values, spec=text)  # type: ignore[arg-type]

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def for_input(self, shape: tuple[int | str, ...]) -> Preprocess:
        """This preprocessing with the target size taken from an input's shape when none was given."""
        if self.size is not None or len(shape) != 4:
            return self
        h, w = shape[2:4] if self.layout == "nchw" else shape[1:3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            return replace(self, size=(w, h))
        return self

    def _resized(self, img):  # PIL.Image -> PIL.Image
        from PIL import Image

        if self.size is None or img.size == self.size:
            return img
        (w, h), (tw, th) = img.size, self.size
        if self.resize == "stretch":
            return img.resize(self.size, Image.BILINEAR)
        if self.resize == "fit":  # cover the target, then crop the centre
            k = max(tw / w, th / h)
            img = img.resize((max(tw, round(w * k)), max(th, round(h * k))), Image.BILINEAR)
            left, top = (img.size[0] - tw) // 2, (img.size[1] - th) // 2
            return img.crop((left, top, left + tw, top + th))
        k = min(tw / w, th / h)  # letterbox: fit inside, pad
        inner = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.BILINEAR)
        fill = LETTERBOX_FILL if img.mode == "L" else (LETTERBOX_FILL,) * 3
        canvas = Image.new(img.mode, self.size, fill)
        canvas.paste(inner, ((tw - inner.size[0]) // 2, (th - inner.size[1]) // 2))
        return canvas

    def load(self, path: Path) -> np.ndarray:
        """One image file as a CHW or HWC array (no batch axis)."""
        from PIL import Image

        with Image.open(path) as img:
            img = self._resized(img.convert("L" if self.color == "gray" else "RGB"))
            pixels: np.ndarray = np.asarray(img, dtype=np.float32)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if self.color == "bgr":
            pixels = pixels[:, :, ::-1]
        if self.dtype != "uint8":
            pixels = (pixels * self.scale - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "nchw":
            pixels = pixels.transpose(2, 0, 1)
        return np.ascontiguousarray(pixels.astype(self.dtype))

    def to_json(self) -> dict[str, object]:
        return {"spec": self.spec, "color": self.color, "size": self.size, "resize": self.resize,
                "scale": self.scale,
                "mean": self.mean, "std": self.std, "layout": self.layout, "dtype": self.dtype}


def _resize(value: str) -> dict[str, object]:
    """``224x224``, ``224x224:letterbox`` or ``letterbox`` -> size and mode."""
    size_text, _, mode = value.lower().rpartition(":") if ":" in value else ("", "", value.lower())
    if mode not in RESIZE_MODES:
        size_text, mode = value.lower(), "stretch"
    out: dict[str, object] = {"resize": mode}
    if size_text:
        w, x, h = size_text.partition("x")
        if not (x and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise TrtforgeError(
                f"bad --preprocess resize {value!r}: expected WIDTHxHEIGHT[:MODE] like 224x224 or "
                f"224x224:letterbox, or a mode alone ({'|'.join(RESIZE_MODES)}) to use the model's input size"
            )
        out["size"] = (int(w), int(h))
    return out


@dataclass
class Skipped:
    """Files a source could not read, counted and reported."""

    files: list[tuple[Path, str]] = field(default_factory=list)

    def add(self, path: Path, why: str) -> None:
        self.files.append((path, why))
        warnings.warn(f"skipped unreadable image {path}: {why}", stacklevel=2)


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder``, recursively, in a stable order."""
    if not folder.is_dir():
        raise TrtforgeError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrtforgeError(
            f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)}, recursively); "
            "point --calib-data at a folder of images, or at a .npz/.npy file"
        )
    return files


def _read_images(files: list[Path], preprocess: Preprocess, skipped: Skipped) -> Iterator[np.ndarray]:
    for path in files:
        try:
            yield preprocess.load(path)
        except Exception as exc:  # PIL raises many types for corrupt files
            skipped.add(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _batched(samples: Iterator[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


@dataclass
class CalibrationSource:
    """Batches of ``{input_name: array}`` from an image folder, ``.npz`` or ``.npy``."""

    path: Path
    input_names: list[str]
    preprocess: Preprocess | None = None
    num: int = 500
    batch_size: int = 8
    seed: int = 0
    skipped: Skipped = field(default_factory=Skipped)
    axes: Mapping[str, int | None] = field(default_factory=dict)
    """Each input's batch axis in a .npz (absent: 0; None: one value for every sample, e.g. a
    scalar sample rate); see :func:`trtforge.graph.batch.batch_axes`."""

    def __post_init__(self) -> None:
        if not self.path.exists():
            raise TrtforgeError(f"calibration data not found: {self.path}")
        if self.path.is_dir():
            if len(self.input_names) != 1:
                raise TrtforgeError(
                    f"an image folder feeds one input, but the model has {len(self.input_names)} "
                    f"({', '.join(self.input_names)}); pass a .npz keyed by input name"
                )
            if self.preprocess is None:
                raise TrtforgeError("an image folder needs --preprocess to say how images become inputs")
            files = image_files(self.path)
            if len(files) > self.num:
                pick = np.random.default_rng(self.seed).choice(len(files), self.num, replace=False)
                files = [files[i] for i in sorted(pick)]
            self._files = files
        elif self.path.suffix.lower() not in (".npz", ".npy"):
            raise TrtforgeError(
                f"cannot read calibration data from {self.path}: expected a folder of images, .npz or .npy"
            )

    def __len__(self) -> int:
        """Number of samples this source yields at most."""
        if self.path.is_dir():
            return len(self._files)
        counts = [v.shape[self.axes.get(k, 0) or 0] for k, v in self._arrays().items()
                  if self.axes.get(k, 0) is not None and v.ndim]
        return min(self.num, counts[0] if counts else 1)

    def _arrays(self) -> dict[str, np.ndarray]:
        try:
            loaded = np.load(self.path, allow_pickle=False)
        except Exception as exc:
            raise TrtforgeError(f"cannot read {self.path} as numpy data: {exc}") from None
        if isinstance(loaded, np.ndarray):
            if len(self.input_names) != 1:
                raise TrtforgeError(
                    f"a .npy file feeds one input, but the model has {len(self.input_names)}; use a .npz "
                    f"keyed by input name ({', '.join(self.input_names)})"
                )
            return {self.input_names[0]: loaded}
        arrays = {k: loaded[k] for k in loaded.files}
        missing = [n for n in self.input_names if n not in arrays]
        if missing:
            raise TrtforgeError(
                f"{self.path} has no array for input(s) {', '.join(missing)}; it holds: "
                f"{', '.join(arrays) or 'nothing'}"
            )
        return {n: arrays[n] for n in self.input_names}

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        if self.path.is_dir():
            assert self.preprocess is not None
            name = self.input_names[0]
            count = 0
            for batch in _batched(_read_images(self._files, self.preprocess, self.skipped), self.batch_size):
                count += len(batch)
                yield {name: batch}
            if count == 0:
                raise TrtforgeError(
                    f"none of the {len(self._files)} images in {self.path} could be read "
                    f"(first problem: {self.skipped.files[0][1]})"
                )
            return
        arrays = self._arrays()
        n = len(self)
        if n == 0:
            raise TrtforgeError(f"{self.path} holds no samples")
        for start in range(0, n, self.batch_size):
            yield {k: self._cut(k, v, slice(start, min(start + self.batch_size, n))) for k, v in arrays.items()}

    def _cut(self, name: str, array: np.ndarray, samples: slice) -> np.ndarray:
        """``samples`` along the input's batch axis; an input without one (a scalar) whole."""
        axis = self.axes.get(name, 0)
        if axis is None or not array.ndim:
            return array
        where: list[slice] = [slice(None)] * array.ndim
        where[axis] = samples
        return array[tuple(where)]

    @property
    def total(self) -> int | None:
        return len(self)

    def describe(self) -> str:
        return str(self.path)


def load_loader(spec: str) -> Callable[[], Iterable[Mapping[str, np.ndarray]]]:
    """``FILE.py[:func]`` -> the function (default name ``batches``) it names."""
    import importlib.util

    file, sep, func = spec.rpartition(":") if spec.rpartition(":")[2].isidentifier() else (spec, "", "")
    if not sep:
        file, func = spec, "batches"
    path = Path(file)
    if path.suffix != ".py" or not path.is_file():
        raise TrtforgeError(f"--calib-loader {spec!r}: {path} is not a Python file; expected FILE.py[:function]")
    module_spec = importlib.util.spec_from_file_location(f"trtforge_calib_loader_{path.stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # the user's code: its own errors keep their traceback
    fn = getattr(module, func, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise TrtforgeError(
            f"--calib-loader {spec!r}: {path} has no function {func!r}; it defines: {', '.join(found) or 'none'}"
        )
    return fn


@dataclass
class LoaderSource:
    """Batches of ``{input_name: array}`` from a user function (``--calib-loader FILE.py[:func]``)."""

    spec: str
    input_names: list[str]
    num: int = 500
    skipped: Skipped = field(default_factory=Skipped)

    def __post_init__(self) -> None:
        self._fn = load_loader(self.spec)

    @property
    def total(self) -> int | None:
        return None  # a generator does not say how many it holds

    def describe(self) -> str:
        return self.spec

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        count = 0
        for index, batch in enumerate(self._fn()):
            if not isinstance(batch, Mapping):
                raise TrtforgeError(
                    f"--calib-loader {self.spec}: batch {index} is a {type(batch).__name__}, "
                    f"expected a dict {{input_name: array}} with keys {', '.join(self.input_names)}"
                )
            missing = [n for n in self.input_names if n not in batch]
            if missing:
                raise TrtforgeError(
                    f"--calib-loader {self.spec}: batch {index} has no array for input(s) {', '.join(missing)}; "
                    f"it holds: {', '.join(map(str, batch)) or 'nothing'}"
                )
            arrays = {n: np.asarray(batch[n]) for n in self.input_names}
            sizes = {len(a) if a.ndim else 0 for a in arrays.values()}
            if len(sizes) != 1 or 0 in sizes:
                raise TrtforgeError(
                    f"--calib-loader {self.spec}: batch {index} arrays need one shared, non-empty batch axis; "
                    f"got shapes {', '.join(f'{n}={a.shape}' for n, a in arrays.items())}"
                )
            take = min(sizes.pop(), self.num - count)
            yield {n: a[:take] for n, a in arrays.items()}
            count += take
            if count >= self.num:
                break
        if count == 0:
            raise TrtforgeError(f"--calib-loader {self.spec} yielded no batches")


def calibration_source(data: Path | None, loader: str | None, input_names: list[str],
                       shapes: Mapping[str, tuple[int | str, ...]], preprocess: Preprocess | None,
                       num: int, batch_size: int, seed: int) -> CalibrationSource | LoaderSource:
    """The source a calibration config names: a loader wins over data when both are given."""
    if loader is not None:
        return LoaderSource(loader, input_names, num)
    assert data is not None
    if preprocess is not None and len(input_names) == 1:
        preprocess = preprocess.for_input(shapes.get(input_names[0], ()))
    from trtforge.config import TensorSpec
    from trtforge.graph.batch import batch_axes

    axes = batch_axes([TensorSpec(n, "float32", tuple(shapes.get(n, ()))) for n in input_names])
    return CalibrationSource(data, input_names, preprocess, num, batch_size, seed, axes=axes)


def rebatch(batches: Iterable[dict[str, np.ndarray]], size: int,
            axes: Mapping[str, int | None] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Regroup batches into exactly ``size`` samples (for models with a static batch).

    Each input is joined and cut along its batch axis (``axes``; default 0); an input without
    one (a scalar) is passed as it is.  A final partial group is dropped: a model of static
    batch cannot run it.
    """
    axes = axes or {}
    pending: dict[str, list[np.ndarray]] = {}
    count = 0
    for batch in batches:
        for name, array in batch.items():
            pending.setdefault(name, []).append(array)
        count += _samples_in(batch, axes)
        while count >= size:
            joined = {k: v[-1] if _axis(k, v[-1], axes) is None else np.concatenate(v, axis=_axis(k, v[-1], axes))
                      for k, v in pending.items()}
            yield {k: _part(v, _axis(k, v, axes), 0, size) for k, v in joined.items()}
            pending = {k: [_part(v, _axis(k, v, axes), size, None)] for k, v in joined.items()}
            count -= size


def _axis(name: str, array: np.ndarray, axes: Mapping[str, int | None]) -> int | None:
    return axes.get(name, 0) if array.ndim else None


def _samples_in(batch: Mapping[str, np.ndarray], axes: Mapping[str, int | None]) -> int:
    for name, array in batch.items():
        axis = _axis(name, array, axes)
        if axis is not None:
            return int(array.shape[axis])
    return 1


def _part(array: np.ndarray, axis: int | None, start: int, stop: int | None) -> np.ndarray:
    if axis is None:
        return array
    where: list[slice] = [slice(None)] * array.ndim
    where[axis] = slice(start, stop)
    return array[tuple(where)]
