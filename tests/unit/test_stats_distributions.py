"""Prediction drift, calibration and fairness: error rates by simulation, reported figures vs scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from bench.methods import first_decision, vigil
from bench.scenarios import CONFIDENCE_MID, GROUP_POSITIVE, Scenario, World, score_bins, score_shift_for_psi
from bench.simulate import simulate
from vigil.stats.calibration import calibration_evidence
from vigil.stats.drift import jensen_shannon, psi
from vigil.stats.evidence import FAIL, PASS, classify

ALPHA, REPS = 0.05, 2000
LIMIT = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)


def rates(scenario: Scenario, rpm: float, seed: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    kind, minute = first_decision(vigil(scenario.family, simulate(scenario, rpm, REPS, seed)))
    return float((kind == FAIL).mean()), float((kind == PASS).mean()), kind, minute


@pytest.mark.parametrize("family, seed", [("predictionDrift", 10), ("calibration", 11), ("fairnessGap", 12)])
def test_identical_versions_at_low_traffic_are_rarely_failed(family: str, seed: int) -> None:
    # 200 req/min at 10%: 20 canary requests a minute, where normal approximations are weakest
    fail, _, _, _ = rates(Scenario("A/A", family), 200, seed=seed)
    assert fail <= LIMIT


def test_drift_of_psi_0_1_is_caught_within_30_minutes() -> None:
    drift = score_bins(score_shift_for_psi(0.10))
    _, _, kind, minute = rates(Scenario("drift", "predictionDrift", canary=World(score=drift)), 1000, 3)
    assert ((kind == FAIL) & (minute <= 30)).mean() >= 0.95


def test_no_drift_passes_at_high_traffic() -> None:
    _, passed, _, minute = rates(Scenario("A/A", "predictionDrift"), 5000, 4)
    assert passed >= 0.95 and np.median(minute) <= 15


def test_calibration_shift_of_5_points_with_late_labels_is_caught_within_45_minutes() -> None:
    worse = World(accuracy=CONFIDENCE_MID - 0.05)
    _, _, kind, minute = rates(Scenario("ece", "calibration", canary=worse), 1000, 5)
    assert ((kind == FAIL) & (minute <= 45)).mean() >= 0.95


def test_waiting_for_labels_is_never_a_pass() -> None:
    # labels lag 5-15 minutes: in the first 5 minutes nothing has arrived
    zeros = np.zeros((5, 5))
    ev = calibration_evidence(zeros, zeros, zeros, zeros, 0.01)
    assert (classify(ev, ALPHA, ALPHA, 0) != PASS).all()


def test_a_group_losing_10_points_is_caught_within_45_minutes() -> None:
    positive = GROUP_POSITIVE.copy()
    positive[2] -= 0.10
    _, _, kind, minute = rates(Scenario("fair", "fairnessGap", canary=World(positive=positive)), 1000, 6)
    assert ((kind == FAIL) & (minute <= 45)).mean() >= 0.94


def test_psi_and_jensen_shannon_match_their_definitions() -> None:
    p, q = np.array([10.0, 30.0, 60.0]), np.array([20.0, 30.0, 50.0])
    ps, qs = (p + 0.5) / (p.sum() + 1.5), (q + 0.5) / (q.sum() + 1.5)
    assert psi(p, q) == pytest.approx(np.sum((ps - qs) * np.log(ps / qs)))
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p / p.sum(), q / q.sum()) ** 2)
