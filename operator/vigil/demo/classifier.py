"""The demo classifier and how faults change its answers.

Every version trains the *same* model (same data, same seed); a version differs from
stable only by the faults it is started with. That keeps the comparison honest: any
difference the analysis finds was injected on purpose and is named in the flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vigil.demo.dataset import DemoDataset, group_of, load_dataset
from vigil.demo.faults import FaultConfig

SCORE_FLOOR = 0.001
SCORE_CEIL = 0.999
CONFIDENCE_BUCKETS: tuple[str, ...] = ("0.5", "0.6", "0.7", "0.8", "0.9")

# Strong regularisation on purpose: scores spread over (0, 1) instead of piling up at
# 0 and 1, so score histograms and confidence buckets carry information.
REGULARISATION_C = 0.01
TRAIN_SHARE = 0.7


@dataclass(frozen=True)
class Prediction:
    """One answer: class, positive-class score, and the confidence of that class."""

    predicted_class: int
    score: float
    group: str

    @property
    def confidence(self) -> float:
        return self.score if self.predicted_class == 1 else 1.0 - self.score

    @property
    def confidence_bucket(self) -> str:
        return confidence_bucket(self.confidence)


def confidence_bucket(confidence: float) -> str:
    """Lower edge of the 0.1-wide bucket that holds a predicted-class confidence."""
    index = min(max(int(math.floor(confidence * 10.0 + 1e-9)) - 5, 0), len(CONFIDENCE_BUCKETS) - 1)
    return CONFIDENCE_BUCKETS[index]


@dataclass(frozen=True)
class FaultDraws:
    """The uniform random numbers one request needs, drawn up front.

    Drawing a fixed number per request keeps a seeded stream aligned across versions,
    so two servers with the same seed see the same draws for the same request order.
    """

    unfair: float
    flip: float
    latency: float
    error: float
    base_latency: float  # standard normal, for the lognormal base latency

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "FaultDraws":
        u = rng.random(4)
        return cls(
            unfair=float(u[0]),
            flip=float(u[1]),
            latency=float(u[2]),
            error=float(u[3]),
            base_latency=float(rng.standard_normal()),
        )


class DemoModel:
    """A logistic regression on the demo data, trained deterministically at start-up.

    The same model scikit-learn's ``LogisticRegression(C=0.01)`` fits on standardised
    features (a unit test checks that), solved here by Newton's method in numpy: the
    fit is exact and deterministic, and the server starts without importing sklearn.
    """

    def __init__(self, dataset: DemoDataset | None = None, train_seed: int = 7) -> None:
        self.dataset = dataset or load_dataset()
        rng = np.random.default_rng(train_seed)
        order = rng.permutation(self.dataset.n_rows)
        self.train_rows = np.sort(order[: int(TRAIN_SHARE * self.dataset.n_rows)])
        x = self.dataset.features[self.train_rows]
        self.mean = x.mean(axis=0)
        self.scale = x.std(axis=0)
        coef, intercept = fit_logistic_regression(
            (x - self.mean) / self.scale, self.dataset.labels[self.train_rows], REGULARISATION_C
        )
        # Fold the standardisation into the weights: one dot product per request.
        self._weights = coef / self.scale
        self._intercept = float(intercept - np.dot(self._weights, self.mean))

    def check_features(self, features: np.ndarray | list[float]) -> np.ndarray:
        """The features as one row, or ValueError saying what is wrong with them."""
        x = np.asarray(features, dtype=np.float64).reshape(1, -1)
        if x.shape[1] != self.dataset.n_features:
            raise ValueError(f"expected {self.dataset.n_features} features, got {x.shape[1]}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features must be finite numbers")
        return x

    def base_score(self, features: np.ndarray | list[float]) -> float:
        """Positive-class probability before any fault."""
        logit = float(np.dot(self.check_features(features)[0], self._weights)) + self._intercept
        return _sigmoid(logit)

    def predict(
        self,
        features: np.ndarray | list[float],
        faults: FaultConfig,
        draws: FaultDraws,
        group: str | None = None,
    ) -> Prediction:
        group = group or group_of(features)
        score = apply_score_faults(self.base_score(features), group, faults, draws)
        return Prediction(predicted_class=int(score >= 0.5), score=score, group=group)


def fit_logistic_regression(x: np.ndarray, y: np.ndarray, c: float,
                            max_iter: int = 100, tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """Minimise ``C * sum(log loss) + ||w||^2 / 2`` (intercept not penalised) by Newton steps.

    The objective of scikit-learn's L2 ``LogisticRegression``; it is strictly convex, so
    Newton's method converges to the one optimum in a handful of iterations.
    """
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    penalty = np.eye(d + 1)
    penalty[d, d] = 0.0
    theta = np.zeros(d + 1)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = c * design.T @ (p - y) + penalty @ theta
        hessian = c * (design.T * (p * (1.0 - p))) @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.max(np.abs(step)) < tol:
            break
    return theta[:d], float(theta[d])


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    if z < -700:  # math.exp overflows past ~709
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))


def _clip(score: float) -> float:
    return min(max(score, SCORE_FLOOR), SCORE_CEIL)


def apply_score_faults(score: float, group: str, faults: FaultConfig, draws: FaultDraws) -> float:
    """The positive-class score after the output faults, in a fixed order.

    calibration (class kept) -> drift -> unfairness (group-specific) -> flips.
    """
    score = _clip(score)
    if faults.miscalibrated:
        score = _clip(_sigmoid(_logit(score) / faults.miscalibrated.temperature))
    if faults.drift:
        score = _clip(score + faults.drift.shift)
    if faults.unfair and group == faults.unfair.group and score >= 0.5:
        if draws.unfair < faults.unfair.share:
            score = 1.0 - score
    if draws.flip < faults.flip_share:
        score = 1.0 - score
    return score


def latency_seconds(faults: FaultConfig, draws: FaultDraws, base_latency_ms: float) -> float:
    """Simulated service time: a lognormal base plus the latency fault's extra delay."""
    base = base_latency_ms * math.exp(0.35 * draws.base_latency) if base_latency_ms > 0 else 0.0
    extra = 0.0
    if faults.latency and draws.latency < faults.latency.share:
        extra = faults.latency.ms
    return (base + extra) / 1000.0


def fails(faults: FaultConfig, draws: FaultDraws) -> bool:
    """Whether this request is answered with an injected 5xx."""
    return bool(faults.errors and draws.error < faults.errors.share)
