"""The TensorFlow models, in every saved form, built once per session (tests/converters, tests/cli)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from tests.converters.tf_models import save_all

    return save_all(tmp_path_factory.mktemp("tf_models"))
