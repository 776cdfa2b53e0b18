"""Sample-ratio mismatch: did the canary get the share of requests it was configured for?

When it did not (a router not applying weights, canary pods crashing before they count,
clients pinned to one version), the comparison is between populations that differ by
more than the version, and a Pass cannot be trusted. The check is the Dirichlet-
multinomial test of Lindon and Malek (2022), the same as savvi's `Multinomial`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vigil.stats.data import HistogramData, MetricData, NoData, RequestCounts
from vigil.stats.result import SampleRatioCheck, e_value
from vigil.stats.sequential import dirichlet_multinomial_log_e


def request_totals(data: Mapping[object, MetricData | NoData]) -> tuple[float, float] | None:
    """(baseline, canary) requests in the window from the first metric that counts requests."""
    items = [d for d in data.values() if isinstance(d, RequestCounts)]
    items += [d for d in data.values() if isinstance(d, HistogramData)]
    for item in items:
        if isinstance(item, RequestCounts):
            n_b, n_c = item.outcomes(item.baseline)[0].sum(), item.outcomes(item.canary)[0].sum()
        else:
            n_b, n_c = item.buckets(item.baseline)[1].sum(), item.buckets(item.canary)[1].sum()
        return float(n_b), float(n_c)
    return None


def srm_log_e(n_b: np.ndarray, n_c: np.ndarray, expected_share: float) -> np.ndarray:
    """Log e-value against "canary share = expected_share" from cumulative requests."""
    counts = np.stack([np.asarray(n_b, dtype=float), np.asarray(n_c, dtype=float)], axis=-1)
    return dirichlet_multinomial_log_e(counts, np.array([1 - expected_share, expected_share]))


def sample_ratio_check(data: Mapping[object, MetricData | NoData], expected_share: float | None,
                       alpha: float) -> SampleRatioCheck | None:
    if expected_share is None or not 0 < expected_share < 1:
        return None
    totals = request_totals(data)
    if totals is None:
        return None
    n_b, n_c = totals
    observed = n_c / (n_b + n_c) if n_b + n_c > 0 else None
    return SampleRatioCheck(
        expected_share=expected_share, observed_share=observed,
        e_value=e_value(float(srm_log_e(np.array(n_b), np.array(n_c), expected_share))),
        threshold=1 / alpha, samples=(int(n_b), int(n_c)),
    )
