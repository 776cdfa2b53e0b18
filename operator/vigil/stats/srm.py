"""Sample-ratio mismatch: did the canary get the share of requests the router serves it?

When it did not (canary pods crashing before they count, clients pinned to one version, a
scrape that misses pods), the comparison is between populations that differ by more than the
version. The check is the Dirichlet-multinomial test of Lindon and Malek (2022), the same as
savvi's `Multinomial`, on the intervals since the split last changed (`since`): the expected
share is the one the router really serves there (a replica ratio for the replicas router),
so a router that cannot express a weight is not a mismatch. The result is reported with the
analysis; it does not change the outcome on its own (the decision core reports it once).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vigil.stats.data import HistogramData, MetricData, NoData, RequestCounts
from vigil.stats.result import SampleRatioCheck, e_value
from vigil.stats.sequential import dirichlet_multinomial_log_e


def request_totals(data: Mapping[object, MetricData | NoData], since: float | None = None
                   ) -> tuple[float, float] | None:
    """(baseline, canary) requests in the intervals that start at or after `since` (unix
    seconds; None: the whole window), from the first metric that counts requests."""
    items = [d for d in data.values() if isinstance(d, RequestCounts)]
    items += [d for d in data.values() if isinstance(d, HistogramData)]
    for item in items:
        if isinstance(item, RequestCounts):
            n_b, n_c = item.outcomes(item.baseline)[0], item.outcomes(item.canary)[0]
        else:
            n_b, n_c = item.buckets(item.baseline)[1].sum(axis=-1), item.buckets(item.canary)[1].sum(axis=-1)
        keep = np.ones(n_b.shape, dtype=bool) if since is None else item.timestamps[:-1] >= since
        return float(n_b[keep].sum()), float(n_c[keep].sum())
    return None


def srm_log_e(n_b: np.ndarray, n_c: np.ndarray, expected_share: float) -> np.ndarray:
    """Log e-value against "canary share = expected_share" from cumulative requests."""
    counts = np.stack([np.asarray(n_b, dtype=float), np.asarray(n_c, dtype=float)], axis=-1)
    return dirichlet_multinomial_log_e(counts, np.array([1 - expected_share, expected_share]))


def sample_ratio_check(data: Mapping[object, MetricData | NoData], expected_share: float | None,
                       alpha: float, since: float | None = None) -> SampleRatioCheck | None:
    if expected_share is None or not 0 < expected_share < 1:
        return None
    totals = request_totals(data, since)
    if totals is None or sum(totals) <= 0:
        return None
    n_b, n_c = totals
    observed = n_c / (n_b + n_c) if n_b + n_c > 0 else None
    return SampleRatioCheck(
        expected_share=expected_share, observed_share=observed,
        e_value=e_value(float(srm_log_e(np.array(n_b), np.array(n_c), expected_share))),
        threshold=1 / alpha, samples=(int(n_b), int(n_c)),
    )
