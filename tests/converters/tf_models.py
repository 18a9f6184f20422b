"""Small real TensorFlow/Keras models in every saved form, built on the spot."""

from __future__ import annotations

from pathlib import Path

CUSTOM_LAYER_SOURCE = """
import keras


@keras.saving.register_keras_serializable(package="tests")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor + 1.0

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
"""


def two_in_two_out():
    """An NHWC image input and a non-image input; a class vector and an NHWC feature map out."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), name="image")
    extra = keras.Input((4,), name="extra")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    joined = keras.layers.Concatenate()([pooled, keras.layers.Dense(4)(extra)])
    logits = keras.layers.Dense(3, name="logits")(joined)
    return keras.Model([image, extra], [logits, x], name="two")


def with_custom_layer(module_path: Path):
    """A model using the class defined in ``module_path`` (written from CUSTOM_LAYER_SOURCE)."""
    import importlib.util

    import keras

    module_path.write_text(CUSTOM_LAYER_SOURCE)
    spec = importlib.util.spec_from_file_location("custom_layers_for_test", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inp = keras.Input((5,), name="features")
    out = keras.layers.Dense(2)(module.Scale(3.0)(inp))
    return keras.Model(inp, out)


def save_all(folder: Path) -> dict[str, Path]:
    """Every form of the two-input model (plus a custom-layer .h5), under ``folder``."""
    import tensorflow as tf

    model = two_in_two_out()
    paths = {
        "keras": folder / "two.keras",
        "h5": folder / "two.h5",
        "savedmodel": folder / "two_saved",
        "tflite": folder / "two.tflite",
        "pb": folder / "frozen.pb",
        "custom_h5": folder / "custom.h5",
        "custom_py": folder / "custom_layers.py",
        "tf2ckpt": folder / "tf2ckpt" / "ckpt",
    }
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.export(paths["savedmodel"], verbose=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    paths["tflite"].write_bytes(converter.convert())
    with_custom_layer(paths["custom_py"]).save(paths["custom_h5"])
    _frozen_pb(paths["pb"])
    paths["tf2ckpt"] = Path(tf.train.Checkpoint(model=model).write(str(paths["tf2ckpt"])))
    paths["meta"] = _tf1_checkpoint(folder / "tf1" / "model")
    return paths


def _frozen_pb(path: Path) -> None:
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6], name="x")
        w = tf.constant([[0.5, -1.0]] * 6, name="w")
        tf.nn.relu(tf.matmul(x, w) + 0.25, name="y")
    path.write_bytes(g.as_graph_def().SerializeToString())


def _tf1_checkpoint(prefix: Path) -> Path:
    import numpy as np
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        w = tf.compat.v1.get_variable("w", initializer=np.arange(6, dtype=np.float32).reshape(3, 2) / 6)
        tf.nn.tanh(tf.matmul(x, w), name="y")
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            prefix.parent.mkdir(parents=True, exist_ok=True)
            saver.save(sess, str(prefix))
    return prefix.with_name(prefix.name + ".meta")
