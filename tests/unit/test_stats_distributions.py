"""Prediction drift, calibration and fairness: error rates by simulation, reported figures vs scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from vigil.api.gates import Gate, MetricKind
from vigil.stats.calibration import calibration_evidence
from vigil.stats.drift import drift_evidence, jensen_shannon, psi
from vigil.stats.evidence import FAIL, PASS, GateEvidence, classify
from vigil.stats.fairness import fairness_evidence

from tests.unit.test_stats_worlds import (
    CONFIDENCE_MID,
    GROUP_POSITIVE,
    drifted,
    first,
    groups,
    histogram_counts,
    labels,
    limit,
    score_bins,
)

ALPHA, REPS = 0.05, 2000
LIMIT = limit(REPS)


def margins(kind: MetricKind) -> dict[str, float]:
    gate = Gate(metric=kind)
    return {"tolerance": gate.tolerance, "regression": gate.regression}


def aa(kind: MetricKind, rpm: float, seed: int) -> GateEvidence:
    rng = np.random.default_rng(seed)
    if kind is MetricKind.PREDICTION_DRIFT:
        return drift_evidence(*histogram_counts(rng, rpm, 0.1, score_bins(), score_bins(), REPS), **margins(kind))
    if kind is MetricKind.CALIBRATION:
        return calibration_evidence(*labels(rng, rpm, 0.1, CONFIDENCE_MID, CONFIDENCE_MID, REPS), **margins(kind))
    return fairness_evidence(*groups(rng, rpm, 0.1, GROUP_POSITIVE, GROUP_POSITIVE, REPS), **margins(kind))


@pytest.mark.parametrize("kind, seed", [(MetricKind.PREDICTION_DRIFT, 10), (MetricKind.CALIBRATION, 11),
                                        (MetricKind.FAIRNESS_GAP, 12)])
def test_identical_versions_at_low_traffic_are_rarely_failed(kind: MetricKind, seed: int) -> None:
    # 200 req/min at 10%: 20 canary requests a minute, where normal approximations are weakest
    kind_, _ = first(aa(kind, 200, seed))
    assert (kind_ == FAIL).mean() <= LIMIT


def test_drift_of_distance_0_1_is_caught_within_30_minutes() -> None:
    c, b = histogram_counts(np.random.default_rng(3), 1000, 0.1, drifted(0.10), score_bins(), REPS)
    kind, minute = first(drift_evidence(c, b, **margins(MetricKind.PREDICTION_DRIFT)))
    assert ((kind == FAIL) & (minute <= 30)).mean() >= 0.95


def test_no_drift_passes_at_high_traffic() -> None:
    kind, minute = first(aa(MetricKind.PREDICTION_DRIFT, 5000, 4), min_samples=200)
    assert (kind == PASS).mean() >= 0.95 and np.median(minute) <= 15


def test_calibration_shift_of_5_points_with_late_labels_is_caught() -> None:
    """Within 45 minutes at the tolerance this test was written for (0.01); at the default
    (0.02, reset from the benchmark-tuned 0.01) within 60 minutes in most runs."""
    lab = labels(np.random.default_rng(5), 1000, 0.1, CONFIDENCE_MID - 0.05, CONFIDENCE_MID, REPS)
    kind, minute = first(calibration_evidence(*lab, 0.01, regression=0.05))
    assert ((kind == FAIL) & (minute <= 45)).mean() >= 0.95
    kind, minute = first(calibration_evidence(*lab, **margins(MetricKind.CALIBRATION)))
    assert ((kind == FAIL) & (minute <= 60)).mean() >= 0.90


def test_waiting_for_labels_is_never_a_pass() -> None:
    # labels lag 5-15 minutes: in the first 5 minutes nothing has arrived
    zeros = np.zeros((5, 5))
    ev = calibration_evidence(zeros, zeros, zeros, zeros, 0.02, regression=0.05)
    assert (classify(ev, ALPHA, ALPHA, 0) != PASS).all()


def test_a_group_losing_10_points_is_caught() -> None:
    """Within 45 minutes at the tolerance this test was written for (0.02: about 94%, as
    documented, "narrowly"); at the default (0.03, reset from the tuned 0.02) within 60."""
    positive = GROUP_POSITIVE.copy()
    positive[2] -= 0.10
    g = groups(np.random.default_rng(6), 1000, 0.1, positive, GROUP_POSITIVE, REPS)
    kind, minute = first(fairness_evidence(*g, 0.02, regression=0.10))
    assert ((kind == FAIL) & (minute <= 45)).mean() >= 0.92
    kind, minute = first(fairness_evidence(*g, **margins(MetricKind.FAIRNESS_GAP)))
    assert ((kind == FAIL) & (minute <= 60)).mean() >= 0.90


def test_psi_and_jensen_shannon_match_their_definitions() -> None:
    p, q = np.array([10.0, 30.0, 60.0]), np.array([20.0, 30.0, 50.0])
    ps, qs = (p + 0.5) / (p.sum() + 1.5), (q + 0.5) / (q.sum() + 1.5)
    assert psi(p, q) == pytest.approx(np.sum((ps - qs) * np.log(ps / qs)))
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p / p.sum(), q / q.sum()) ** 2)
