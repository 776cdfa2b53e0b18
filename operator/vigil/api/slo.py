"""Error-budget gate settings of a RiskPolicy (the SRE workbook's multi-window burn rates)."""

from __future__ import annotations

from pydantic import Field

from vigil.api.common import CamelModel, Duration


class BurnWindow(CamelModel):
    """Alert when the budget burns `factor` times faster than sustainable over both windows:
    the long window proves it is significant, the short one that it is still happening."""

    long: Duration = Field(description="The long window, e.g. 1h.")
    short: Duration = Field(description="The short window, e.g. 5m (the workbook uses 1/12 of the long one).")
    factor: float = Field(gt=0, description="Burn-rate threshold, e.g. 14.4 (2% of a 30-day budget in 1h).")


def workbook_windows() -> list[BurnWindow]:
    """The SRE workbook's page-level pair: 14.4x over 1h/5m and 6x over 6h/30m."""
    return [BurnWindow(long="1h", short="5m", factor=14.4), BurnWindow(long="6h", short="30m", factor=6.0)]


class ErrorBudgetPolicy(CamelModel):
    """No rollout starts while the stable version burns its error budget too fast: a failing
    baseline makes the comparison meaningless and a second change makes the incident worse."""

    objective: float = Field(
        gt=0.5, lt=1.0,
        description="Availability objective of the stable version: the share of requests that succeed, e.g. 0.999.",
    )
    windows: list[BurnWindow] = Field(default_factory=workbook_windows, min_length=1, max_length=4)
