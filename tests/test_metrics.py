"""Golden tests: metric values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cortexfm.metrics import (
    cc_abs,
    cc_max,
    cc_norm,
    correlation,
    fraction_explainable_variance_explained,
    sensorium_correlation_to_average,
    sensorium_normalize_responses,
    sensorium_single_trial_correlation,
    single_trial_correlation,
)

# one neuron, 2 repeats of a 3-frame clip
R = np.array([[[1.0], [2.0], [3.0]], [[3.0], [2.0], [4.0]]])  # mean: 2, 2, 3.5


def test_cc_max_by_hand():
    # P = Var_t(mean) = var([2, 2, 3.5]) = 0.5 ; TP = mean(var([1,2,3]), var([3,2,4])) = 2/3
    # n = 2: SP = (2 * 0.5 - 2/3) / 1 = 1/3 ; CC_max = sqrt(SP / P) = sqrt(2/3)
    assert cc_max(R)[0] == pytest.approx(math.sqrt(2 / 3))


def test_cc_abs_and_cc_norm_by_hand():
    prediction = np.array([[1.0], [1.0], [4.0]])
    # corr([1, 1, 4], [2, 2, 3.5]) = 1 (both are affine images of [0, 0, 1])
    assert cc_abs(prediction, R)[0] == pytest.approx(1.0)
    assert cc_norm(prediction, R)[0] == pytest.approx(1 / math.sqrt(2 / 3))
    prediction = np.array([[1.0], [2.0], [3.0]])
    # corr([1,2,3],[2,2,3.5]): dx = [-1,0,1], dy = [-0.5,-0.5,1]; cov = 1.5; |dx| = sqrt2, |dy| = sqrt1.5
    assert cc_abs(prediction, R)[0] == pytest.approx(1.5 / math.sqrt(2 * 1.5))


def test_correlation_handles_nan_and_constant_neurons():
    x = np.array([[1.0, 1.0], [2.0, 1.0], [np.nan, 1.0], [4.0, 1.0]])
    y = np.array([[2.0, 3.0], [4.0, 5.0], [7.0, 1.0], [8.0, 2.0]])
    r = correlation(x, y)
    assert r[0] == pytest.approx(1.0)  # the NaN frame is dropped
    assert np.isnan(r[1])  # constant prediction


def test_single_trial_correlation_pools_trials_after_skipping():
    p = [np.array([[9.0], [1.0], [2.0]]), np.array([[-9.0], [3.0], [4.0]])]
    r = [np.array([[0.0], [2.0], [4.0]]), np.array([[5.0], [6.0], [8.0]])]
    # after skip=1: p = [1,2,3,4], r = [2,4,6,8]: r = 1
    assert single_trial_correlation(p, r, skip=1)[0] == pytest.approx(1.0)


def test_feve_by_hand():
    # noise = mean over time of var across repeats (ddof 1): var(1,3)=2, var(2,2)=0, var(3,4)=0.5 -> 5/6
    # total = var of all 6 values (ddof 1) = var([1,2,3,3,2,4]) = 1.1 ; perfect mean prediction:
    # mse = mean((2-1)^2,(2-2)^2,(3.5-3)^2,(2-3)^2,(2-2)^2,(3.5-4)^2) = (1+0+.25+1+0+.25)/6 = 5/12
    mean = R.mean(0)
    expected = 1 - (5 / 12 - 5 / 6) / (1.1 - 5 / 6)
    assert fraction_explainable_variance_explained(mean, R)[0] == pytest.approx(expected)


def test_sensorium_scores_align_to_the_end_skip_50_and_count_nan_as_zero():
    rng = np.random.default_rng(0)
    responses = [rng.normal(size=(80, 2)), rng.normal(size=(70, 2))]
    # predictions cover only the last 60 frames; neuron 1 is predicted as a constant
    predictions = []
    for r in responses:
        p = r[-60:].copy()
        p[:, 1] = 1.0
        predictions.append(p)
    # after alignment, frames before 50 of each trial are dropped: only r[50:] counts
    scores = sensorium_single_trial_correlation(predictions, responses)
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == 0.0  # NaN -> 0
    # garbage in frames < 50 does not matter
    predictions[0][:5, 0] = 1e6  # aligned frames 20..24 of trial 0
    assert sensorium_single_trial_correlation(predictions, responses)[0] == pytest.approx(1.0)

    clips = {"a": rng.normal(size=(3, 60, 1)), "b": rng.normal(size=(4, 60, 1))}
    preds = {k: v.mean(0) * 2 + 1 for k, v in clips.items()}
    assert sensorium_correlation_to_average(preds, clips)[0] == pytest.approx(1.0)


def test_official_normalisation_floors_the_std():
    std = np.array([2.0, 0.0, 4.0])  # mean 2: floor 0.02
    out = sensorium_normalize_responses(np.array([[4.0, 1.0, 4.0]]), std)
    np.testing.assert_allclose(out, [[2.0, 50.0, 1.0]])


def test_shape_errors():
    with pytest.raises(ValueError, match="repeats, time, neurons"):
        cc_max(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[time, neurons\]"):
        correlation(np.zeros((3, 2)), np.zeros((3, 3)))
