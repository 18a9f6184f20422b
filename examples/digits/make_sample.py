"""Train the digits sample model and write its data.

A small Keras CNN on scikit-learn's bundled digits (8x8, upsampled to 32x32 grayscale),
exported as a TensorFlow SavedModel with one NHWC input named ``image``.  Writes, beside
this file:

    saved_model/        the SavedModel (serving signature: image -> probabilities)
    calib/              300 calibration PNGs drawn from the training split
    test/               the held-out split as PNGs named ``<index>_<label>.png``
    test/labels.csv     the same labels as ``file,label``

Everything is seeded, so a re-run reproduces the same split and, on the same machine,
the same weights.  Run: ``python examples/digits/make_sample.py``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 1234
SIZE = 32
NUM_CALIB = 300


def load_digits_32() -> tuple[np.ndarray, np.ndarray]:
    """Digits as uint8 images of SIZE x SIZE (0..255) and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    upsampled = np.stack([np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.BILINEAR)) for im in images])
    return upsampled, digits.target.astype(np.int64)


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(SEED).permutation(n)
    n_test = n // 5
    return order[n_test:], order[:n_test]


def train(x: np.ndarray, y: np.ndarray):  # -> keras.Model
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(SEED)
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=20, verbose=0, shuffle=True)
    return model


def write_pngs(folder: Path, images: np.ndarray, names: list[str]) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for image, name in zip(images, names):
        Image.fromarray(image, mode="L").save(folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    args = parser.parse_args()

    images, labels = load_digits_32()
    train_idx, test_idx = split(len(images))
    x_train = images[train_idx, :, :, None].astype(np.float32) / 255.0
    model = train(x_train, labels[train_idx])

    x_test = images[test_idx, :, :, None].astype(np.float32) / 255.0
    accuracy = float((model.predict(x_test, verbose=0).argmax(1) == labels[test_idx]).mean())
    print(f"keras top-1 on the held-out split: {accuracy:.4f} ({len(test_idx)} images)")

    # Build everything in a scratch folder, then move into place: no half-written sample.
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        tmp = Path(scratch)
        model.export(str(tmp / "saved_model"), verbose=False)
        calib_idx = train_idx[:NUM_CALIB]
        write_pngs(tmp / "calib", images[calib_idx], [f"{i:04d}.png" for i in calib_idx])
        test_names = [f"{i:04d}_{labels[i]}.png" for i in test_idx]
        write_pngs(tmp / "test", images[test_idx], test_names)
        with open(tmp / "test" / "labels.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "label"])
            writer.writerows((name, int(labels[i])) for name, i in zip(test_names, test_idx))
        for part in ("saved_model", "calib", "test"):
            shutil.rmtree(args.out / part, ignore_errors=True)
            (tmp / part).rename(args.out / part)
    print(f"wrote {args.out}/saved_model, calib/ ({NUM_CALIB} PNGs), test/ ({len(test_idx)} PNGs)")


if __name__ == "__main__":
    main()
