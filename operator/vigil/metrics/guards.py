"""Reads what `vigil.core.guards` asks for: the artifact digest a version's pods report
(`vigil_model_info`, docs/metrics-contract.md) and the stable version's error-budget burn rate
(errors over requests from `vigil_model_requests_total`, divided by the budget 1 - objective)."""

from __future__ import annotations

import math
from typing import Any

from vigil.core.guards import GuardPlan
from vigil.core.model import GuardReadings
from vigil.metrics.promql import selector
from vigil.metrics.queries import REQUESTS_TOTAL
from vigil.metrics.target import AnalysisTarget

MODEL_INFO = "vigil_model_info"
"""Gauge, value 1, labels model, version and `digest`: the artifact the server loaded."""


def digest_query(target: AnalysisTarget, version: str, namespace_label: str = "namespace") -> str:
    return f"max by (digest) (last_over_time({selector(MODEL_INFO, target.matchers(version, namespace_label))}[5m]))"


def burn_query(target: AnalysisTarget, version: str, window: str, objective: float,
               namespace_label: str = "namespace") -> str:
    """Error ratio over `window` divided by the error budget; no requests in the window is no
    burn (the `or vector(0)`), which a missing series would otherwise hide."""
    every = selector(REQUESTS_TOTAL, target.matchers(version, namespace_label))
    errors = selector(REQUESTS_TOTAL, {**target.matchers(version, namespace_label), "outcome": "error"})
    ratio = f"(sum(increase({errors}[{window}])) or vector(0)) / sum(increase({every}[{window}]))"
    return f"({ratio}) / {1 - objective:.12g}"


class GuardReader:
    """Runs the guard queries on one Prometheus client (a `prometheus_api_client` connection)."""

    def __init__(self, client: Any, namespace_label: str = "namespace") -> None:
        self.client = client
        self.namespace_label = namespace_label

    def read(self, target: AnalysisTarget, plan: GuardPlan) -> GuardReadings:
        """Every failure is a `problem` in the readings, never an exception: the core treats a
        missing reading as "not proven" (hold), never as healthy."""
        digests: frozenset[str] | None = None
        rates: dict[str, float] | None = None
        try:
            if plan.artifact_of:
                result = self.client.custom_query(digest_query(target, plan.artifact_of, self.namespace_label))
                digests = frozenset(str(r["metric"]["digest"]) for r in result if r.get("metric", {}).get("digest"))
            if plan.budget_of and plan.objective is not None:
                rates = {}
                for window in plan.windows:
                    result = self.client.custom_query(
                        burn_query(target, plan.budget_of, window, plan.objective, self.namespace_label))
                    value = float(result[0]["value"][1]) if result else 0.0  # no requests: nothing burned
                    if math.isnan(value):
                        value = 0.0  # 0/0: no requests in the window
                    rates[window] = value
        except Exception as err:  # noqa: BLE001 - any failure of the source is reported, not raised
            return GuardReadings(canary_digests=digests, burn_rates=None if plan.budget_of else rates,
                                 problem=f"Prometheus guard query failed: {type(err).__name__}: {err}"[:300])
        return GuardReadings(canary_digests=digests, burn_rates=rates)
