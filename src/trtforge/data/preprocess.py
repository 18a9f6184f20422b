"""``--preprocess``: how an image file becomes a model input.

:class:`Preprocess` is the typed form of a ``--preprocess`` string, parsed once at the edge and
shared by calibration, ``run``, ``compare`` and ``deploy`` so that the same pixels reach every
model. :meth:`Preprocess.resolve` fits it to one model input (a bare resize mode takes the
input's size) before any image is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError
from trtforge.numbers import integer, real

COLORS = ("gray", "rgb", "bgr")
LAYOUTS = ("nchw", "nhwc")
RESIZE_MODES = ("stretch", "fit", "letterbox")
MAX_SIDE = 8192  # a resize target larger than this is a typo, and would need gigabytes per image
LETTERBOX_FILL = 114  # the grey YOLO-style letterboxing pads with


def _number(key: str, text: str) -> float:
    try:
        return real(text, f"--preprocess {key}", fraction=True)
    except TrtforgeError as exc:
        raise TrtforgeError(
            f"bad --preprocess value {key}={text!r}: expected a finite number like 0.5 or 1/255 "
            f"({str(exc).split(': ', 1)[-1]})"
        ) from None


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

    def resolve(self, spec: TensorSpec) -> Preprocess:
        """Fitted to one model input, once, before any image is read.

        A resize given as a mode alone takes the input's height and width; a channel count or
        rank that cannot fit the input is a user error naming both.
        """
        fitted = self.for_input(spec.shape)
        if len(spec.shape) == 4:
            axis = 1 if self.layout == "nchw" else 3
            channels = spec.shape[axis]
            if isinstance(channels, int) and channels > 0 and channels != self.channels:
                raise TrtforgeError(
                    f"--preprocess {self.spec!r} makes {self.channels}-channel {self.layout} images, but input "
                    f"{spec.name!r} is {spec.shape_text()} ({channels} channels at axis {axis}); "
                    f"set color={'gray' if channels == 1 else 'rgb'} or layout={'nhwc' if axis == 1 else 'nchw'}"
                )
        elif spec.shape:
            raise TrtforgeError(
                f"--preprocess makes images, but input {spec.name!r} is {spec.shape_text()} "
                "(not rank 4); pass --inputs FILE.npz instead"
            )
        return fitted

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
        return {
            "spec": self.spec,
            "color": self.color,
            "size": self.size,
            "resize": self.resize,
            "scale": self.scale,
            "mean": self.mean,
            "std": self.std,
            "layout": self.layout,
            "dtype": self.dtype,
        }


def _resize(value: str) -> dict[str, object]:
    """``224x224``, ``224x224:letterbox`` or ``letterbox`` -> size and mode."""
    size_text, _, mode = value.lower().rpartition(":") if ":" in value else ("", "", value.lower())
    if mode not in RESIZE_MODES:
        size_text, mode = value.lower(), "stretch"
    out: dict[str, object] = {"resize": mode}
    if size_text:
        w, x, h = size_text.partition("x")
        try:
            out["size"] = (integer(w, "width", 1, MAX_SIDE), integer(h, "height", 1, MAX_SIDE))
        except TrtforgeError:
            raise TrtforgeError(
                f"bad --preprocess resize {value!r}: expected WIDTHxHEIGHT[:MODE] like 224x224 or "
                f"224x224:letterbox (sides 1 to {MAX_SIDE}), or a mode alone ({'|'.join(RESIZE_MODES)}) to use "
                "the model's input size"
            ) from None
    return out
