"""compare's default thresholds: an all-zero or wiped-out answer never passes."""

from __future__ import annotations

import numpy as np

from trtforge.compare import Thresholds, output_metrics


def test_all_zero_output_fails_the_default_thresholds() -> None:
    ref = np.random.default_rng(0).standard_normal((4, 10))
    metrics = output_metrics("y", "y", np.zeros_like(ref), ref, Thresholds.default())
    assert metrics.failures and metrics.min_cosine == -1.0
    assert not output_metrics("y", "y", ref, ref, Thresholds.default()).failures
    assert not output_metrics("y", "y", np.zeros(4), np.zeros(4), Thresholds.default()).failures  # both zero


def test_a_wiped_out_field_fails_by_default_though_cosine_is_high() -> None:
    rng = np.random.default_rng(0)
    ref = np.concatenate([rng.uniform(0, 320, (2, 4, 400)), rng.uniform(0, 1, (2, 80, 400))], axis=1)
    got = ref.copy()
    got[:, 4:] = np.round(got[:, 4:] * 255 / 320) * 320 / 255  # scores on the boxes' scale: all 0 or 1.25
    metrics = output_metrics("preds", "preds", got, ref, Thresholds.default())
    assert metrics.min_cosine > 0.99 and metrics.failures
    assert "field" in metrics.failures[0] and "along axis 1" in metrics.failures[0]
    assert not output_metrics(
        "preds", "preds", got, ref, Thresholds(min_cosine=0.9)
    ).failures  # the old default's blind spot
