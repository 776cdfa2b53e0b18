"""Two margins per gate: validation of the fields, and validity at both boundaries.

At the *tolerance* boundary a gate may Fail in at most alpha of rollouts; at the
*regression* boundary it may Pass in at most beta of them. Both are checked by seeded
simulation (a look every minute; alpha + 3 standard errors), at traffic where a healthy
canary does pass, so the Pass check cannot hold merely because nothing ever passes.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from vigil.api.gates import DEFAULT_REGRESSION, DEFAULT_TOLERANCE, Gate, MetricKind
from vigil.stats.calibration import calibration_evidence
from vigil.stats.drift import drift_evidence
from vigil.stats.evidence import FAIL, PASS
from vigil.stats.fairness import fairness_evidence
from vigil.stats.latency import latency_evidence
from vigil.stats.rates import error_rate_evidence, gate_error_evidence, shadow_evidence

from tests.unit.test_stats_worlds import (
    CONFIDENCE_MID,
    GROUP_POSITIVE,
    LATENCY_EDGES,
    bins,
    drifted,
    errors,
    first,
    groups,
    histogram_counts,
    labels,
    latency_cdf,
    limit,
    poisson,
    score_bins,
)

REPS = 2000
LIMIT = limit(REPS)


# ------------------------------------------------------------------ the fields


def test_every_kind_has_a_regression_margin_beyond_its_tolerance() -> None:
    for kind in MetricKind:
        gate = Gate(metric=kind)
        assert gate.tolerance == DEFAULT_TOLERANCE[kind] and gate.regression == DEFAULT_REGRESSION[kind]
        assert gate.regression > gate.tolerance
    assert Gate(metric="errorRate").regression_floor == 0.001 and Gate(metric="errorRate").tolerance_floor is None


def test_defaults_are_the_documented_meanings() -> None:
    by = {k: (Gate(metric=k).tolerance, Gate(metric=k).regression) for k in MetricKind}
    assert by[MetricKind.ERROR_RATE] == (0.10, 0.50)
    assert by[MetricKind.LATENCY_P99] == (0.10, 0.30)
    assert by[MetricKind.PREDICTION_DRIFT][1] == 0.10
    assert by[MetricKind.CALIBRATION][1] == 0.05 and by[MetricKind.FAIRNESS_GAP][1] == 0.10


def test_given_margins_are_used_and_read_from_camel_case() -> None:
    gate = Gate.model_validate({"metric": "latencyP99", "maxRelativeIncrease": 0.05, "regressionRelativeIncrease": 0.2})
    assert (gate.tolerance, gate.regression) == (0.05, 0.2)
    gate = Gate.model_validate({"metric": "errorRate", "maxAbsoluteIncrease": 0.002, "regressionAbsoluteIncrease": 0.01})
    assert (gate.tolerance_floor, gate.regression_floor) == (0.002, 0.01)


def test_a_large_tolerance_widens_the_defaulted_regression_margin() -> None:
    assert Gate.model_validate({"metric": "errorRate", "maxRelativeIncrease": 0.5}).regression == pytest.approx(0.725)
    assert Gate.model_validate({"metric": "calibration", "maxAbsoluteIncrease": 0.04}).regression == pytest.approx(0.06)
    assert Gate.model_validate({"metric": "errorRate", "maxAbsoluteIncrease": 0.01}).regression_floor == pytest.approx(0.015)
    # the example policy's tolerances keep the meaning-based regression margins
    assert Gate.model_validate({"metric": "predictionDrift", "maxAbsoluteIncrease": 0.05}).regression == 0.10


@pytest.mark.parametrize("fields, words", [
    ({"metric": "errorRate", "maxRelativeIncrease": 0.2, "regressionRelativeIncrease": 0.2},
     ["regressionRelativeIncrease (0.2)", "maxRelativeIncrease (0.2)", "greater"]),
    ({"metric": "calibration", "regressionAbsoluteIncrease": 0.01},
     ["regressionAbsoluteIncrease (0.01)", "maxAbsoluteIncrease (0.02 (its default))"]),
    ({"metric": "errorRate", "maxAbsoluteIncrease": 0.01, "regressionAbsoluteIncrease": 0.005},
     ["regressionAbsoluteIncrease (0.005)", "maxAbsoluteIncrease (0.01)", "floor"]),
    ({"metric": "fairnessGap", "regressionRelativeIncrease": 0.5},
     ["regressionRelativeIncrease does not apply", "use regressionAbsoluteIncrease"]),
    ({"metric": "latencyP50", "regressionAbsoluteIncrease": 0.5},
     ["regressionAbsoluteIncrease does not apply", "use regressionRelativeIncrease"]),
    ({"metric": "shadowDisagreement", "regressionAbsoluteIncrease": 0.0}, ["greater than 0"]),
])
def test_invalid_margins_are_rejected_naming_the_fields(fields: dict, words: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        Gate.model_validate(fields)
    for word in words:
        assert word in str(info.value)


# ------------------------------------------------------------ error rate


@pytest.mark.parametrize("rpm, seed", [(1000, 1), (5000, 2)])
def test_error_rate_at_the_tolerance_is_rarely_rolled_back(rpm: int, seed: int) -> None:
    ev = gate_error_evidence(*errors(np.random.default_rng(seed), rpm, 0.1, 0.011, 0.01, REPS), Gate(metric="errorRate"))
    kind, _ = first(ev)
    assert (kind == FAIL).mean() <= LIMIT


def test_error_rate_at_the_regression_margin_is_rarely_promoted_though_healthy_ones_are() -> None:
    rng = np.random.default_rng(3)
    gate = Gate(metric="errorRate")
    regressed, _ = first(gate_error_evidence(*errors(rng, 5000, 0.1, 0.015, 0.01, REPS, 120), gate))
    healthy, _ = first(gate_error_evidence(*errors(rng, 5000, 0.1, 0.01, 0.01, 500, 120), gate))
    assert (regressed == PASS).mean() <= LIMIT
    assert (healthy == PASS).mean() >= 0.5


def test_rare_errors_at_the_regression_floor_are_rarely_promoted_though_error_free_ones_are() -> None:
    """0.1% -> 0.2% is x2 and +0.1 points: a regression on both counts, at the floor."""
    rng = np.random.default_rng(4)
    gate = Gate(metric="errorRate")
    regressed, _ = first(gate_error_evidence(*errors(rng, 5000, 0.2, 0.002, 0.001, REPS, 120), gate))
    error_free, _ = first(gate_error_evidence(*errors(rng, 5000, 0.2, 0.0, 0.0, 200, 120), gate))
    assert (regressed == PASS).mean() <= LIMIT
    assert (error_free == PASS).mean() == 1.0


def test_an_increase_at_the_tolerated_floor_is_rarely_rolled_back() -> None:
    """1% -> 1.5% is beyond a x1.1 ratio but exactly at a tolerated floor of 0.5 points."""
    gate = Gate.model_validate({"metric": "errorRate", "maxAbsoluteIncrease": 0.005})
    kind, _ = first(gate_error_evidence(*errors(np.random.default_rng(5), 5000, 0.1, 0.015, 0.01, REPS), gate))
    assert (kind == FAIL).mean() <= LIMIT
    without, _ = first(error_rate_evidence(*errors(np.random.default_rng(5), 5000, 0.1, 0.015, 0.01, REPS), 0.1))
    assert (without == FAIL).mean() >= 0.5  # the floor is what holds it back


# --------------------------------------------------------------- latency


def test_latency_stretched_by_the_regression_margin_is_rarely_promoted_though_healthy_is() -> None:
    rng = np.random.default_rng(6)
    base = bins(latency_cdf())
    c, b = histogram_counts(rng, 5000, 0.1, bins(latency_cdf(1.3)), base, REPS)
    regressed, _ = first(latency_evidence(LATENCY_EDGES, c, b, 0.99, 0.10, 0.30))
    c, b = histogram_counts(rng, 5000, 0.1, base, base, 500)
    healthy, _ = first(latency_evidence(LATENCY_EDGES, c, b, 0.99, 0.10, 0.30))
    assert (regressed == PASS).mean() <= LIMIT
    assert (healthy == PASS).mean() >= 0.5


# ----------------------------------------------------------------- drift


def test_drift_at_the_tolerance_is_rarely_rolled_back_and_at_the_regression_rarely_promoted() -> None:
    rng = np.random.default_rng(7)
    base = score_bins()
    c, b = histogram_counts(rng, 5000, 0.1, drifted(0.02), base, REPS)
    at_tolerance, _ = first(drift_evidence(c, b, 0.02, regression=0.10))
    c, b = histogram_counts(rng, 1000, 0.1, drifted(0.10), base, REPS)
    at_regression, _ = first(drift_evidence(c, b, 0.02, regression=0.10))
    c, b = histogram_counts(rng, 1000, 0.1, base, base, 500)
    healthy, _ = first(drift_evidence(c, b, 0.02, regression=0.10))
    assert (at_tolerance == FAIL).mean() <= LIMIT
    assert (at_regression == PASS).mean() <= LIMIT
    assert (healthy == PASS).mean() >= 0.5


# ------------------------------------------------------------ calibration


def test_calibration_at_the_tolerance_is_rarely_rolled_back_and_at_the_regression_rarely_promoted() -> None:
    rng = np.random.default_rng(8)
    tol, reg = DEFAULT_TOLERANCE[MetricKind.CALIBRATION], DEFAULT_REGRESSION[MetricKind.CALIBRATION]
    at_tolerance, _ = first(calibration_evidence(*labels(rng, 5000, 0.1, CONFIDENCE_MID - tol, CONFIDENCE_MID, REPS),
                                                 tol, regression=reg))
    at_regression, _ = first(calibration_evidence(*labels(rng, 5000, 0.1, CONFIDENCE_MID - reg, CONFIDENCE_MID, REPS),
                                                  tol, regression=reg))
    healthy, _ = first(calibration_evidence(*labels(rng, 5000, 0.1, CONFIDENCE_MID, CONFIDENCE_MID, 500),
                                            tol, regression=reg))
    assert (at_tolerance == FAIL).mean() <= LIMIT
    assert (at_regression == PASS).mean() <= LIMIT
    assert (healthy == PASS).mean() >= 0.5


# --------------------------------------------------------------- fairness


def test_fairness_at_the_tolerance_is_rarely_rolled_back_and_at_the_regression_rarely_promoted() -> None:
    rng = np.random.default_rng(9)
    tol, reg = DEFAULT_TOLERANCE[MetricKind.FAIRNESS_GAP], DEFAULT_REGRESSION[MetricKind.FAIRNESS_GAP]

    def moved(by: float) -> np.ndarray:
        p = GROUP_POSITIVE.copy()
        p[2] -= by
        return p

    at_tolerance, _ = first(fairness_evidence(*groups(rng, 5000, 0.1, moved(tol), GROUP_POSITIVE, REPS), tol, regression=reg))
    at_regression, _ = first(fairness_evidence(*groups(rng, 1000, 0.1, moved(reg), GROUP_POSITIVE, REPS), tol, regression=reg))
    healthy, _ = first(fairness_evidence(*groups(rng, 1000, 0.1, GROUP_POSITIVE, GROUP_POSITIVE, 500), tol, regression=reg))
    assert (at_tolerance == FAIL).mean() <= LIMIT
    assert (at_regression == PASS).mean() <= LIMIT
    assert (healthy == PASS).mean() >= 0.5


# ----------------------------------------------------------------- shadow


def test_shadow_at_the_tolerance_is_rarely_rolled_back_and_at_the_regression_rarely_promoted() -> None:
    rng = np.random.default_rng(10)
    tol, reg = DEFAULT_TOLERANCE[MetricKind.SHADOW_DISAGREEMENT], DEFAULT_REGRESSION[MetricKind.SHADOW_DISAGREEMENT]
    m = np.full(60, 1000.0)

    def run(share: float, reps: int) -> np.ndarray:
        x = poisson(rng, m * share, reps)
        kind, _ = first(shadow_evidence(x + poisson(rng, m * (1 - share), reps), x, tol, reg))
        return kind

    assert (run(tol, REPS) == FAIL).mean() <= LIMIT
    assert (run(reg, REPS) == PASS).mean() <= LIMIT
    assert (run(0.01, 500) == PASS).mean() >= 0.5
