"""Calibration / validation arrays cut from the photos in scikit-learn (china, flower) and matplotlib (a portrait).

    python benchmarks/photo_arrays.py OUT.npy --n 64 --size 320 [--seed 0] [--layout nchw]

Random square crops (a third of the shorter side up to all of it), resized to ``--size``, values in
[0, 1]. Real image statistics for INT8 calibration and fidelity checks where no dataset can be
downloaded; use different seeds for calibration and validation.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images


def _portrait() -> np.ndarray:
    """matplotlib's grace_hopper.jpg: a person, which a COCO detector finds (the other two have no COCO object)."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def crops(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    photos = [*load_sample_images().images, _portrait()]
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(crop, np.float32) / 255.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=["nchw", "nhwc"], default="nchw")
    args = parser.parse_args()
    arrays = crops(args.n, args.size, args.seed)
    np.save(args.out, arrays.transpose(0, 3, 1, 2).copy() if args.layout == "nchw" else arrays)
    print(f"wrote {args.out}: {args.n} x {args.size}x{args.size} crops ({args.layout}, [0, 1])")


if __name__ == "__main__":
    main()
