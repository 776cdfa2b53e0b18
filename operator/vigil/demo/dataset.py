"""The demo data set, shared by the model server and the load generator.

Both sides must agree on the rows, their true labels and the synthetic protected
attribute ``group``, so it lives in one place. The group is derived from the row's
feature values (not from its position) so a request that carries only features gets
the same group as one that carries a row index.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GROUPS: tuple[str, str] = ("a", "b")
"""Majority and minority group names; the minority holds about 20% of the rows."""

MINORITY_SHARE_PERCENT = 20


@dataclass(frozen=True)
class DemoDataset:
    """Features, true labels and groups of every row, read-only."""

    features: np.ndarray  # shape (n_rows, n_features), float64
    labels: np.ndarray  # shape (n_rows,), int 0/1
    groups: tuple[str, ...]
    feature_names: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def row(self, index: int) -> list[float]:
        """Features of one row as plain floats (JSON-ready)."""
        if not 0 <= index < self.n_rows:
            raise IndexError(f"row {index} is outside 0..{self.n_rows - 1}")
        return [float(v) for v in self.features[index]]


def group_of(features: np.ndarray | list[float]) -> str:
    """The synthetic protected attribute of a feature vector.

    A stable hash of the rounded values, so it does not depend on the row order or on
    float formatting noise from a JSON round trip.
    """
    values = np.round(np.asarray(features, dtype=np.float64), 6)
    digest = hashlib.sha256(values.tobytes()).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    return GROUPS[1] if bucket < MINORITY_SHARE_PERCENT else GROUPS[0]


_MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness",
             "concavity", "concave points", "symmetry", "fractal dimension")
FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"mean {m}" for m in _MEASURES)
    + tuple(f"{m} error" for m in _MEASURES)
    + tuple(f"worst {m}" for m in _MEASURES)
)


def _sklearn_data_file(name: str) -> Path | None:
    """Path of a data file shipped inside scikit-learn, found without importing it.

    Importing sklearn costs ~1.5 s, most of a model server's start-up; the file is the
    same one ``sklearn.datasets.load_breast_cancer`` reads.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    return path if path.is_file() else None


def _read_breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    path = _sklearn_data_file("breast_cancer.csv")
    if path is None:  # a scikit-learn with another layout: take the slow, official way
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer()
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    return raw[:, :-1].astype(np.float64), raw[:, -1].astype(np.int64)


@functools.lru_cache(maxsize=1)
def load_dataset() -> DemoDataset:
    """scikit-learn's breast-cancer data (ships with the package, no download)."""
    features, labels = _read_breast_cancer()
    if features.shape != (569, len(FEATURE_NAMES)):
        raise RuntimeError(f"unexpected breast-cancer data shape {features.shape}")
    features.setflags(write=False)
    labels.setflags(write=False)
    groups = tuple(group_of(row) for row in features)
    return DemoDataset(features=features, labels=labels, groups=groups, feature_names=FEATURE_NAMES)
