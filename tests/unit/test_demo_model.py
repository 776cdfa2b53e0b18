"""Each fault changes the model's behaviour the way its name promises, and only that way.

Every comparison runs the same rows with the same seeded draws with and without the
fault, so the differences are the fault's and not noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.demo.dataset import group_of, load_dataset
from vigil.demo.faults import FaultConfig, parse_faults
from vigil.demo.classifier import (
    DemoModel, FaultDraws, Prediction, confidence_bucket, fails, latency_seconds,
)

REPEATS = 8  # every row several times, so shares are measured on ~4500 draws


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return DemoModel()


def run(model: DemoModel, faults: FaultConfig, seed: int = 3) -> list[tuple[int, Prediction]]:
    """(row, prediction) for every row REPEATS times, draws from one seeded stream."""
    rng = np.random.default_rng(seed)
    data = model.dataset
    out = []
    for _ in range(REPEATS):
        for row in range(data.n_rows):
            out.append((row, model.predict(data.features[row], faults, FaultDraws.draw(rng),
                                           data.groups[row])))
    return out


def accuracy(model: DemoModel, results: list[tuple[int, Prediction]], group: str | None = None) -> float:
    labels = model.dataset.labels
    hits = [p.predicted_class == labels[r] for r, p in results if group in (None, p.group)]
    return float(np.mean(hits))


def ece(model: DemoModel, results: list[tuple[int, Prediction]]) -> float:
    """Expected calibration error over 0.1-wide confidence buckets."""
    labels = model.dataset.labels
    conf = np.array([p.confidence for _, p in results])
    correct = np.array([p.predicted_class == labels[r] for r, p in results])
    total = 0.0
    for low in np.arange(0.5, 1.0, 0.1):
        mask = (conf >= low) & (conf < low + 0.1 + (1e-9 if low >= 0.9 else 0))
        if mask.any():
            total += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return total


def test_the_healthy_model_is_accurate_and_not_overconfident(model: DemoModel) -> None:
    results = run(model, FaultConfig())
    assert accuracy(model, results) > 0.93
    scores = np.array([p.score for _, p in results])
    # Scores spread over the range: the score histogram must carry information.
    assert np.histogram(scores, bins=10, range=(0, 1))[0].min() > 0


def test_same_seed_same_answers_and_another_seed_differs(model: DemoModel) -> None:
    faults = parse_faults(["disagree:share=0.2", "unfair"])
    first, again, other = run(model, faults, 11), run(model, faults, 11), run(model, faults, 12)
    assert first == again
    assert first != other


def test_groups_are_stable_and_about_one_in_five_is_in_the_minority() -> None:
    data = load_dataset()
    share_b = data.groups.count("b") / data.n_rows
    assert 0.15 < share_b < 0.3
    # A JSON round trip of the features gives the same group.
    assert all(group_of([float(v) for v in data.row(i)]) == data.groups[i] for i in range(50))


def test_latency_fault_moves_the_tail_not_the_median() -> None:
    rng = np.random.default_rng(0)
    draws = [FaultDraws.draw(rng) for _ in range(20000)]
    healthy = np.array([latency_seconds(FaultConfig(), d, 8.0) for d in draws])
    slow = np.array([latency_seconds(parse_faults(["latency:ms=200,share=0.05"]), d, 8.0)
                     for d in draws])
    # 5% of requests moved to the top shifts the median by a quantile step, not more.
    assert np.median(slow) == pytest.approx(np.median(healthy), rel=0.05)
    assert np.quantile(slow, 0.99) > np.quantile(healthy, 0.99) + 0.15
    assert np.mean(slow > healthy) == pytest.approx(0.05, abs=0.006)


def test_error_fault_fails_its_share_of_requests() -> None:
    rng = np.random.default_rng(1)
    draws = [FaultDraws.draw(rng) for _ in range(20000)]
    assert not any(fails(FaultConfig(), d) for d in draws)
    share = np.mean([fails(parse_faults(["errors:share=0.1"]), d) for d in draws])
    assert share == pytest.approx(0.1, abs=3 * math.sqrt(0.1 * 0.9 / 20000))


def test_drift_shifts_scores_but_keeps_accuracy(model: DemoModel) -> None:
    healthy, drifted = run(model, FaultConfig()), run(model, parse_faults(["drift:shift=0.15"]))
    shift = np.mean([d.score - h.score for (_, h), (_, d) in zip(healthy, drifted)])
    assert 0.1 < shift <= 0.15
    assert abs(accuracy(model, drifted) - accuracy(model, healthy)) < 0.05
    hist = lambda rs: np.histogram([p.score for _, p in rs], bins=10, range=(0, 1))[0]  # noqa: E731
    assert hist(drifted)[0] < hist(healthy)[0] / 2  # the lowest score bucket empties


def test_miscalibration_keeps_every_class_and_distorts_confidence(model: DemoModel) -> None:
    healthy = run(model, FaultConfig())
    skewed = run(model, parse_faults(["miscalibrated:temperature=3"]))
    assert [p.predicted_class for _, p in healthy] == [p.predicted_class for _, p in skewed]
    assert np.mean([p.confidence for _, p in skewed]) < np.mean([p.confidence for _, p in healthy]) - 0.1
    assert ece(model, skewed) > ece(model, healthy) + 0.05


def test_unfair_fault_hurts_only_its_group(model: DemoModel) -> None:
    healthy = run(model, FaultConfig())
    unfair = run(model, parse_faults(["unfair:group=b,share=0.5"]))
    assert accuracy(model, unfair, "a") == accuracy(model, healthy, "a")
    assert accuracy(model, unfair, "b") < accuracy(model, healthy, "b") - 0.15

    def positive_rate(results: list[tuple[int, Prediction]], group: str) -> float:
        return float(np.mean([p.predicted_class for _, p in results if p.group == group]))

    assert positive_rate(unfair, "b") < positive_rate(healthy, "b") - 0.2
    assert positive_rate(unfair, "a") == positive_rate(healthy, "a")


@pytest.mark.parametrize("faults, expected", [(["disagree:share=0.05"], 0.05), ([], 0.0)])
def test_disagreement_flips_its_share_of_predictions(model: DemoModel, faults: list[str],
                                                     expected: float) -> None:
    stable = run(model, FaultConfig())
    shadow = run(model, parse_faults(faults))
    flipped = np.mean([s.predicted_class != c.predicted_class for (_, s), (_, c) in zip(stable, shadow)])
    assert flipped == pytest.approx(expected, abs=3 * math.sqrt(0.05 * 0.95 / len(stable)) + 1e-12)


def test_natural_nondeterminism_is_about_one_percent(model: DemoModel) -> None:
    stable = run(model, FaultConfig())
    noisy = run(model, parse_faults([], nondeterminism=0.01))
    flipped = np.mean([s.predicted_class != c.predicted_class for (_, s), (_, c) in zip(stable, noisy)])
    assert flipped == pytest.approx(0.01, abs=3 * math.sqrt(0.01 * 0.99 / len(stable)))


@pytest.mark.parametrize(
    "confidence, bucket",
    [(0.5, "0.5"), (0.5999, "0.5"), (0.6, "0.6"), (0.75, "0.7"), (0.8999, "0.8"), (0.9, "0.9"), (0.999, "0.9")],
)
def test_confidence_bucket_is_the_lower_edge(confidence: float, bucket: str) -> None:
    assert confidence_bucket(confidence) == bucket


def test_the_numpy_fit_is_sklearns_logistic_regression(model: DemoModel) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from vigil.demo.classifier import REGULARISATION_C

    data = model.dataset
    reference = make_pipeline(
        StandardScaler(), LogisticRegression(C=REGULARISATION_C, tol=1e-12, max_iter=10_000)
    ).fit(data.features[model.train_rows], data.labels[model.train_rows])
    expected = reference.predict_proba(data.features)[:, 1]
    got = np.array([model.base_score(data.features[i]) for i in range(data.n_rows)])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_data_is_sklearns_breast_cancer_set() -> None:
    from sklearn.datasets import load_breast_cancer

    bunch, data = load_breast_cancer(), load_dataset()
    np.testing.assert_array_equal(data.features, bunch.data)
    np.testing.assert_array_equal(data.labels, bunch.target)
    assert list(data.feature_names) == list(bunch.feature_names)


def test_bad_features_are_refused(model: DemoModel) -> None:
    with pytest.raises(ValueError, match="expected 30 features"):
        model.base_score([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        model.base_score([float("nan")] * 30)
