"""What the analysis reads: raw cumulative counter samples, one type per metric kind.

The provider hands over counters exactly as scraped (one series per pod and label set, on a
shared time grid, NaN where a series has no sample), never pre-aggregated rates. Summing
counters across pods before differencing would turn one pod's restart into a huge negative
jump; the engine therefore differences each series on its own, treats a drop as a counter
reset (the new value is what was counted since the restart), and only then adds series up.

These types are plain data with no I/O, so `vigil.stats` stays pure; `vigil.metrics`
re-exports them for the provider.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NoData:
    """A metric that could not be read; `reason` says why in one line. Never counts as a pass."""

    reason: str


@dataclass(frozen=True, eq=False)
class CounterSeries:
    """One scraped series: its labels and its cumulative samples on the panel's time grid."""

    labels: Mapping[str, str]
    values: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=float)
        # a counter is never negative or infinite: such a sample (a broken exporter, a "+Inf"
        # scraped as a value) is read as missing, so the gap logic bridges it and it counts nothing
        values = np.where(np.isfinite(values) & (values >= 0), values, np.nan)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True, eq=False)
class CounterPanel:
    """All raw series of one counter family for one version, sampled at `timestamps` (s)."""

    timestamps: np.ndarray
    series: tuple[CounterSeries, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamps", np.asarray(self.timestamps, dtype=float))
        object.__setattr__(self, "series", tuple(self.series))
        for s in self.series:
            if s.values.shape != self.timestamps.shape:
                raise ValueError(
                    f"series {dict(s.labels)} has {s.values.size} samples for "
                    f"{self.timestamps.size} timestamps"
                )

    @classmethod
    def from_counts(cls, timestamps: Sequence[float] | np.ndarray,
                    counts: Sequence[tuple[Mapping[str, str], Sequence[float] | np.ndarray]],
                    start: float = 0.0) -> CounterPanel:
        """Build a panel from per-interval counts (one array of len(timestamps) - 1 per series),
        as a counter that read `start` at the first timestamp."""
        series = tuple(
            CounterSeries(dict(labels), start + np.concatenate([[0.0], np.cumsum(np.asarray(inc, dtype=float))]))
            for labels, inc in counts
        )
        return cls(np.asarray(timestamps, dtype=float), series)

    @property
    def intervals(self) -> int:
        return max(self.timestamps.size - 1, 0)

    def increments(self, key: Callable[[Mapping[str, str]], Hashable | None]) -> dict[Hashable, np.ndarray]:
        """Per-interval increases summed over series with the same `key(labels)` (None: skip).

        Returns arrays of length `intervals`: entry k is what was counted between
        timestamps[k] and timestamps[k+1].
        """
        memo = self.__dict__.setdefault("_memo_increments", {})
        if key not in memo:  # every gate and its plan read the same panel: difference it once per key
            memo[key] = self._increments(key)
        return dict(memo[key])

    def _increments(self, key: Callable[[Mapping[str, str]], Hashable | None]) -> dict[Hashable, np.ndarray]:
        keys = [key(s.labels) for s in self.series]
        kept = [i for i, k in enumerate(keys) if k is not None]
        if not kept:
            return {}
        inc = matrix_increments(_rows([self.series[i].values for i in kept]))
        names = list(dict.fromkeys(keys[i] for i in kept))
        if len(names) == len(kept):  # one series per key (one pod): the sum over series is the series
            total = inc + 0.0  # what adding it to zeros gives (-0.0 becomes 0.0), in a fresh array
        else:
            slot = np.array([names.index(keys[i]) for i in kept])
            total = np.zeros((len(names), self.intervals))
            np.add.at(total, slot, inc)
        total.setflags(write=False)  # shared by every reader of the memo
        return dict(zip(names, total))

    def latest_sample_time(self) -> float | None:
        """Time of the newest sample of any series (None if the panel is empty)."""
        newest = [self.timestamps[np.flatnonzero(~np.isnan(s.values))[-1]]
                  for s in self.series if np.any(~np.isnan(s.values))]
        return float(max(newest)) if newest else None


def _rows(arrays: list[np.ndarray]) -> np.ndarray:
    """np.stack(arrays) of equal-length 1-D arrays without its per-array shape checks (which cost
    more than the copy for a panel's few short series)."""
    if not arrays:
        raise ValueError("need at least one array to stack")
    return np.array(arrays, dtype=float)


def _columns(arrays: list[np.ndarray]) -> np.ndarray:
    """np.stack(arrays, axis=-1) of equal-length 1-D arrays, in C order as np.stack returns it
    (later sums over the last axis depend on the layout)."""
    return np.ascontiguousarray(_rows(arrays).T)


def matrix_increments(values: np.ndarray) -> np.ndarray:
    """Reset-aware per-interval increases of cumulative counter series (rows of `values`).

    * a drop is a restart: the increase is the new value (counted since zero);
    * a gap (NaN) is bridged: the increase lands in the interval of the next sample;
    * a series first seen after the window's first timestamp was created inside the
      window (a new pod, or a label value seen for the first time), so its first value
      is an increase from zero. A series present at the first timestamp only sets the
      reference point.
    Returns shape (series, samples - 1).
    """
    values = np.atleast_2d(np.asarray(values, dtype=float))
    steps = values.shape[1]
    if steps == 0:  # an empty window: no interval, no increase
        return np.zeros((values.shape[0], 0))
    if not np.isnan(values).any():  # every sample present (the usual scrape): each step against the last
        current, previous = values[:, 1:], values[:, :-1]
        return _resolved(np.where(current >= previous, current - previous, current))
    present = ~np.isnan(values)
    seen = np.maximum.accumulate(np.where(present, np.arange(steps), -1), axis=1)
    before = np.concatenate([np.full((values.shape[0], 1), -1), seen[:, :-1]], axis=1)
    previous = np.take_along_axis(np.nan_to_num(values), np.maximum(before, 0), axis=1)
    current = np.nan_to_num(values)
    inc = np.where(before >= 0, np.where(current >= previous, current - previous, current), np.maximum(current, 0.0))
    return _resolved(np.where(present, inc, 0.0)[:, 1:])


COUNT_RESOLUTION = 1e-9
"""Increases below this (a billionth of a request, label or prediction) are read as none. No
counter counts that finely; such values come from a broken exporter (a subnormal float, a
rounding residue), and dividing by them overflows into figures that mean nothing."""


def _resolved(increments: np.ndarray) -> np.ndarray:
    """Increments with those below COUNT_RESOLUTION set to zero (they are never negative)."""
    return np.where(increments < COUNT_RESOLUTION, 0.0, increments)


def series_increments(values: np.ndarray) -> np.ndarray:
    """`matrix_increments` of one series."""
    return matrix_increments(values)[0]


@functools.cache
def _label(name: str) -> Callable[[Mapping[str, str]], str | None]:
    """One key function per label name (cached), so a panel's memo of increments finds it again."""
    return lambda labels: labels.get(name)


@functools.cache
def _labels(*names: str) -> Callable[[Mapping[str, str]], tuple[str, ...] | None]:
    def key(labels: Mapping[str, str]) -> tuple[str, ...] | None:
        values = tuple(map(labels.get, names))  # a label value is a string, never None
        return None if None in values else values  # type: ignore[return-value]

    return key


def parse_le(text: str) -> float:
    return float("inf") if text in ("+Inf", "Inf", "inf") else float(text)


@dataclass(frozen=True, eq=False)
class ArmData:
    """Base of the per-kind data: the same counter family for baseline and canary."""

    baseline: CounterPanel
    canary: CounterPanel

    def __post_init__(self) -> None:
        if not np.array_equal(self.baseline.timestamps, self.canary.timestamps):
            raise ValueError("baseline and canary must be sampled on the same time grid")

    @property
    def timestamps(self) -> np.ndarray:
        return self.canary.timestamps

    def arms(self) -> tuple[CounterPanel, CounterPanel]:
        return self.baseline, self.canary

    def label_values(self, label: str, key: Callable[[str], float] | None = None) -> list[str]:
        """The values of `label` in both arms' series, sorted by `key`: found once per window
        (the evidence call, the verdict and the plan each ask), a fresh list each time."""
        memo = self.__dict__.setdefault("_memo_label_values", {})
        if label not in memo:
            memo[label] = sorted({s.labels[label] for p in self.arms() for s in p.series if label in s.labels},
                                 key=key)
        return list(memo[label])


@dataclass(frozen=True, eq=False)
class RequestCounts(ArmData):
    """`vigil_model_requests_total{outcome="success"|"error"}`: error rate, and traffic for SRM."""

    def outcomes(self, panel: CounterPanel) -> tuple[np.ndarray, np.ndarray]:
        """(requests, errors) per interval."""
        inc = panel.increments(_label("outcome"))
        zero = np.zeros(panel.intervals)
        errors = inc.get("error", zero)
        return errors + inc.get("success", zero), errors


@dataclass(frozen=True, eq=False)
class HistogramData(ArmData):
    """A Prometheus histogram's `_bucket` series (label `le`, cumulative over buckets)."""

    def buckets(self, panel: CounterPanel) -> tuple[np.ndarray, np.ndarray]:
        """(upper edges incl. +Inf, per-interval counts per bin shaped (intervals, bins)); computed
        once per panel (both latency gates and their plans read the same histogram)."""
        memo = self.__dict__.setdefault("_memo_buckets", {})
        if id(panel) not in memo:
            edges, counts = self._buckets(panel)
            edges.setflags(write=False)
            counts.setflags(write=False)
            memo[id(panel)] = (panel, edges, counts)  # the panel is kept so its id stays unique
        return memo[id(panel)][1], memo[id(panel)][2]

    def _buckets(self, panel: CounterPanel) -> tuple[np.ndarray, np.ndarray]:
        inc = panel.increments(_label("le"))
        edges = self.edges()
        if not edges:
            return np.array([np.inf]), np.zeros((panel.intervals, 1))
        cumulative = _columns([inc.get(e, np.zeros(panel.intervals)) for e in edges])
        cumulative = np.maximum.accumulate(cumulative, axis=-1)  # cumulative over `le`
        counts = np.empty_like(cumulative)  # np.diff(cumulative, axis=-1, prepend=0.0), without its concatenation
        counts[:, 0] = cumulative[:, 0] - 0.0
        np.subtract(cumulative[:, 1:], cumulative[:, :-1], out=counts[:, 1:])
        return np.array([parse_le(e) for e in edges]), counts

    def edges(self) -> list[str]:
        """The `le` labels of both arms, in order (found once: both arms' buckets ask for them)."""
        return self.label_values("le", key=parse_le)


class LatencyHistogram(HistogramData):
    """`vigil_model_request_duration_seconds_bucket`.

    Buckets at or below zero seconds are folded into the first positive one: no request takes
    less than no time, a `le="0"` bucket only holds what a coarse timer rounded down to zero,
    and the tails are judged on log latency, where such an edge has no place. The fold is exact
    (the counts are cumulative over `le`, so the first positive bucket already holds them)."""

    def edges(self) -> list[str]:
        return [e for e in super().edges() if not parse_le(e) <= 0]


class ScoreHistogram(HistogramData):
    """`vigil_model_prediction_score_bucket` (positive-class score)."""


@dataclass(frozen=True, eq=False)
class GroupPredictions(ArmData):
    """`vigil_model_predictions_total{group, predicted_class}`."""

    positive_class: str = "1"

    def by_group(self, panel: CounterPanel, groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(predictions, positive predictions) per interval and group, shaped (intervals, groups)."""
        inc = panel.increments(_labels("group", "predicted_class"))
        zero = np.zeros(panel.intervals)
        total = _columns([sum((v for (g, _), v in inc.items() if g == grp), zero) for grp in groups])
        positive = _columns([inc.get((grp, self.positive_class), zero) for grp in groups])
        return total.reshape(panel.intervals, len(groups)), positive.reshape(panel.intervals, len(groups))

    def groups(self) -> list[str]:
        """The `group` labels of both arms, in order."""
        return self.label_values("group")


@dataclass(frozen=True, eq=False)
class LabelFeedback(ArmData):
    """`vigil_model_label_feedback_total{group, confidence_bucket, correct}` (delayed labels)."""

    def by_bucket(self, panel: CounterPanel, buckets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(labelled, correct) per interval and confidence bucket, shaped (intervals, buckets)."""
        inc = panel.increments(_labels("confidence_bucket", "correct"))
        zero = np.zeros(panel.intervals)
        correct = [inc.get((b, "true"), zero) for b in buckets]
        wrong = [inc.get((b, "false"), zero) for b in buckets]
        shape = (panel.intervals, len(buckets))
        labelled = _columns([c + w for c, w in zip(correct, wrong)]).reshape(shape)
        return labelled, _columns(correct).reshape(shape)

    def buckets(self) -> list[str]:
        """The `confidence_bucket` labels of both arms, in order of their value."""
        return self.label_values("confidence_bucket", key=float)


@dataclass(frozen=True, eq=False)
class ShadowComparisons:
    """`vigil_model_shadow_comparisons_total{outcome="agree"|"disagree"}` of the shadow version,
    and optionally the live control `vigil_model_shadow_control_comparisons_total{outcome}`:
    the stable version compared with itself (a second replica, or scoring twice) on the same
    mirrored requests, so natural nondeterminism is measured instead of assumed."""

    canary: CounterPanel
    control: CounterPanel | None = None

    def __post_init__(self) -> None:
        if self.control is not None and not np.array_equal(self.control.timestamps, self.canary.timestamps):
            raise ValueError("shadow and control comparisons must be sampled on the same time grid")

    @property
    def timestamps(self) -> np.ndarray:
        return self.canary.timestamps

    def comparisons(self) -> tuple[np.ndarray, np.ndarray]:
        """(comparisons, disagreements) of the shadow per interval."""
        return _agreement(self.canary)

    def control_comparisons(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(comparisons, disagreements) of stable against itself per interval, if measured."""
        return None if self.control is None else _agreement(self.control)

    def arms(self) -> tuple[CounterPanel, ...]:
        return (self.canary,) if self.control is None else (self.canary, self.control)


def _agreement(panel: CounterPanel) -> tuple[np.ndarray, np.ndarray]:
    inc = panel.increments(_label("outcome"))
    zero = np.zeros(panel.intervals)
    disagree = inc.get("disagree", zero)
    return disagree + inc.get("agree", zero), disagree


MetricData = RequestCounts | LatencyHistogram | ScoreHistogram | GroupPredictions | LabelFeedback | ShadowComparisons
"""Raw counters for one gate, as `vigil.metrics` collects them."""
