"""The rollout report's plots (matplotlib, Agg): one PNG per panel and one with all of them.

Each panel draws one kind of series from `ReportData` over time, with a vertical marker
where a decision was taken; a panel without data says why instead of drawing an empty axis:
    plot-weights      canary weight as decided + traffic share each version served
    plot-error-rate   5xx share per version
    plot-latency-p99  p99 latency per version (from the histogram buckets)
    plot-drift        the drift statistic of each decision and its bound
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from vigil.demo.report_data import ReportData, VerdictPoint

PANELS: tuple[tuple[str, str, str], ...] = (
    # (element id, alt text / title, y-axis label)
    ("plot-weights", "traffic weights", "traffic (%)"),
    ("plot-error-rate", "error rate", "errors (%)"),
    ("plot-latency-p99", "latency p99", "p99 (ms)"),
    ("plot-drift", "drift statistic with bound", "statistic"),
)

DECISION_COLOURS = {
    "promote": "#1a7f37", "rollback": "#cf222e", "abort": "#cf222e", "step": "#0969da",
    "hold": "#6e7781", "start": "#8250df", "shadow": "#8250df",
}
VERSION_COLOURS = ("#0969da", "#bf8700", "#cf222e", "#1a7f37", "#8250df", "#57606a")


def _new_figure(rows: int, height_per_row: float = 2.6) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, height_per_row * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _draw_panel(ax: Any, panel_id: str, data: ReportData, label_markers: bool) -> None:
    from matplotlib.dates import DateFormatter

    _, title, ylabel = next(p for p in PANELS if p[0] == panel_id)
    colours = {v: VERSION_COLOURS[i % len(VERSION_COLOURS)] for i, v in enumerate(data.versions)}
    if panel_id == "plot-weights":
        for version, points in data.traffic_share.items():
            ax.plot(*zip(*points), color=colours[version], lw=1.2, alpha=0.8,
                    label=f"{version} served share")
        decided = [(d.time, d.weight) for d in data.decisions if d.weight is not None]
        if decided:
            times = [t for t, _ in decided] + [data.end]
            weights = [w for _, w in decided] + [decided[-1][1]]
            ax.step(times, weights, where="post", color="black", lw=2, ls="--",
                    label="canary weight (decided)")
        ax.set_ylim(-5, 105)
    elif panel_id in ("plot-error-rate", "plot-latency-p99"):
        series = data.error_rate if panel_id == "plot-error-rate" else data.latency_p99
        for version, points in series.items():
            ax.plot(*zip(*points), color=colours[version], lw=1.4, label=version)
        ax.set_ylim(bottom=0)
    else:
        by_metric: dict[str, list[tuple[datetime, VerdictPoint]]] = {}
        for t, verdict in data.drift_points():
            by_metric.setdefault(verdict.metric, []).append((t, verdict))
        for index, (metric, verdicts) in enumerate(sorted(by_metric.items())):
            colour = VERSION_COLOURS[(index + 4) % len(VERSION_COLOURS)]
            ax.plot([t for t, _ in verdicts], [v.statistic for _, v in verdicts], "o-",
                    color=colour, label=f"{metric} statistic")
            failed = [(t, v.statistic) for t, v in verdicts if v.outcome.lower() == "fail"]
            if failed:
                ax.plot(*zip(*failed), "X", color="#cf222e", ms=9, label=f"{metric} Fail")
            bounds = [(t, v.bound) for t, v in verdicts if v.bound is not None]
            if bounds:
                ax.step([t for t, _ in bounds], [b for _, b in bounds], where="post",
                        color=colour, ls="--", alpha=0.7, label=f"{metric} bound")
    if panel_id in data.gaps:
        ax.text(0.5, 0.5, f"no data: {data.gaps[panel_id]}", transform=ax.transAxes,
                ha="center", va="center", fontsize=9, color="#57606a", wrap=True)
    for index, decision in enumerate(data.decisions):
        colour = DECISION_COLOURS.get(decision.decision.lower(), "#57606a")
        ax.axvline(decision.time, color=colour, lw=1, ls=":", alpha=0.9)
        if label_markers:
            ax.annotate(f"{index + 1}. {decision.decision}", xy=(decision.time, 1.0),
                        xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                        fontsize=8, color=colour)
    ax.set_xlim(data.start, data.end)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def render_panel_png(data: ReportData, panel_id: str) -> bytes:
    figure = _new_figure(1, 3.0)
    _draw_panel(figure.add_subplot(1, 1, 1), panel_id, data, label_markers=True)
    return _png(figure)


def render_combined_png(data: ReportData) -> bytes:
    figure = _new_figure(len(PANELS))
    axes = figure.subplots(len(PANELS), 1, sharex=True)
    for index, (ax, (panel_id, _, _)) in enumerate(zip(axes, PANELS)):
        _draw_panel(ax, panel_id, data, label_markers=index == 0)
    figure.suptitle(f"Vigil rollout of {data.model}: {', '.join(data.versions)}")
    return _png(figure)
