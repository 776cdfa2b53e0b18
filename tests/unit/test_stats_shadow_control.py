"""Shadow against a live control (issue 11): the stable version compared with itself on the same
mirrored requests. Nondeterminism that grows with load must not roll back a healthy shadow;
margins then apply to the shadow's disagreement above the control's."""

from __future__ import annotations

import numpy as np

from tests.unit.test_stats_worlds import first, limit, poisson, times
from vigil.api.gates import Gate, MetricKind
from vigil.metrics.queries import SHADOW_CONTROL_TOTAL, control_query
from vigil.metrics.target import AnalysisTarget
from vigil.stats import CounterPanel, Outcome, ShadowComparisons, analyze
from vigil.stats.evidence import FAIL, PASS
from vigil.stats.rates import shadow_evidence

REPS = 1000
LIMIT = limit(REPS)
TOL, REG = 0.02, 0.05


def comparisons(rng: np.random.Generator, rate: np.ndarray, per_minute: float = 1000.0, reps: int = REPS):
    m = np.full(rate.shape, per_minute)
    x = poisson(rng, m * rate, reps)
    return x + poisson(rng, m * (1 - rate), reps), x


def growing(minutes: int = 60) -> np.ndarray:
    """Natural nondeterminism climbing from 3% to 9% as load grows over the hour (stable
    served twice disagrees with itself that often)."""
    return 0.03 + 0.06 * np.arange(minutes) / minutes


def test_nondeterminism_that_grows_with_load_does_not_roll_back_a_shadow_that_behaves_like_stable() -> None:
    rng = np.random.default_rng(1)
    natural = growing()
    shadow, control = comparisons(rng, natural), comparisons(rng, natural)
    fixed, _ = first(shadow_evidence(*shadow, TOL, REG), min_samples=5000)
    assert (fixed == FAIL).mean() >= 0.5  # against a fixed rate, the load looks like a regression
    live, _ = first(shadow_evidence(*shadow, TOL, REG, control=control), min_samples=5000)
    assert (live == FAIL).mean() <= LIMIT


def test_excess_disagreement_at_the_tolerance_is_rarely_failed_and_at_the_regression_rarely_passed() -> None:
    rng = np.random.default_rng(2)
    natural = growing()
    at_tolerance, _ = first(shadow_evidence(*comparisons(rng, natural + TOL), TOL, REG, control=comparisons(rng, natural)))
    at_regression, _ = first(shadow_evidence(*comparisons(rng, natural + REG), TOL, REG, control=comparisons(rng, natural)))
    healthy, _ = first(shadow_evidence(*comparisons(rng, natural), TOL, REG, control=comparisons(rng, natural)),
                       min_samples=200)
    assert (at_tolerance == FAIL).mean() <= LIMIT
    assert (at_regression == PASS).mean() <= LIMIT
    assert (healthy == PASS).mean() >= 0.9


def test_a_shadow_that_disagrees_well_beyond_the_control_is_caught() -> None:
    rng = np.random.default_rng(3)
    natural = growing()
    kind, minute = first(shadow_evidence(*comparisons(rng, natural + 0.08), TOL, REG, control=comparisons(rng, natural)))
    assert ((kind == FAIL) & (minute <= 15)).mean() >= 0.95


def test_analyze_reads_the_control_and_says_so() -> None:
    rng = np.random.default_rng(4)
    natural = growing(30)
    (m, x), (k, y) = comparisons(rng, natural, reps=1), comparisons(rng, natural, reps=1)
    ts = times(30)

    def panel(n: np.ndarray, d: np.ndarray) -> CounterPanel:
        return CounterPanel.from_counts(ts, [({"outcome": "disagree"}, d[0]), ({"outcome": "agree"}, n[0] - d[0])])

    data = {MetricKind.SHADOW_DISAGREEMENT: ShadowComparisons(panel(m, x), control=panel(k, y))}
    verdict = analyze([Gate(metric="shadowDisagreement")], data, alpha_fail=0.05, alpha_pass=0.05,
                      min_samples=200).verdicts[0]
    assert verdict.outcome is not Outcome.FAIL
    assert "stable with itself" in verdict.explanation and "controlDisagreementRate" in verdict.figures
    assert verdict.samples[0] == int(k.sum())


def test_the_control_query_reads_the_stable_versions_counter() -> None:
    target = AnalysisTarget(namespace="shop", model="ranker", baseline_version="v1", canary_version="v2")
    query = control_query(target)
    assert query.startswith(SHADOW_CONTROL_TOTAL) and 'version="v1"' in query and 'version="v2"' not in query
