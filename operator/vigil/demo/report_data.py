"""One self-contained HTML page (and a PNG) showing what a rollout did and why.

Plots over time, each with a vertical marker where a decision was taken:
    plot-weights      canary weight as decided + traffic share each version served
    plot-error-rate   5xx share per version
    plot-latency-p99  p99 latency per version (from the histogram buckets)
    plot-drift        the drift statistic of each decision and its bound

Series come from Prometheus range queries over the model-server metric contract; the
decisions are plain dicts (``time``, ``decision``, ``phase``, ``weight``, ``verdicts``
[{metric, outcome, statistic, bound}], optional ``version``/``message``). Where
Prometheus has nothing (or cannot be reached) a panel says so instead of drawing an
empty axis, and the reason appears in the page.

    python -m vigil.demo.report --prometheus http://127.0.0.1:9090 --model iris \
        --versions v1,v2,v3 --start 2026-01-01T10:00:00Z --end 2026-01-01T10:05:00Z \
        --decisions decisions.json --out report/
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import requests

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


# --- inputs ---------------------------------------------------------------------------


def to_datetime(value: datetime | str | float | int) -> datetime:
    """A UTC datetime from a datetime, an ISO-8601 string (``Z`` ok) or epoch seconds."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, str):
        return to_datetime(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    raise TypeError(f"not a time: {value!r}")


@dataclass(frozen=True)
class Verdict:
    metric: str
    outcome: str
    statistic: float | None
    bound: float | None


@dataclass(frozen=True)
class DecisionRecord:
    time: datetime
    decision: str
    phase: str
    weight: float | None
    verdicts: tuple[Verdict, ...] = ()
    version: str | None = None
    message: str = ""

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "DecisionRecord":
        verdicts = tuple(
            Verdict(
                metric=str(v.get("metric", "?")), outcome=str(v.get("outcome", "?")),
                statistic=_number(v.get("statistic")), bound=_number(v.get("bound")),
            )
            for v in record.get("verdicts") or ()
        )
        return cls(
            time=to_datetime(record["time"]), decision=str(record.get("decision", "?")),
            phase=str(record.get("phase", "")), weight=_number(record.get("weight")),
            verdicts=verdicts, version=record.get("version") or record.get("canary"),
            message=str(record.get("message", "")),
        )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- Prometheus -----------------------------------------------------------------------


Series = dict[str, list[tuple[datetime, float]]]  # version -> points


class RangeReader(Protocol):
    """Runs a PromQL range query; returns [(labels, [(unix_time, value)])]."""

    def query_range(self, query: str, start: datetime, end: datetime,
                    step_seconds: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]: ...


class PrometheusHTTPReader:
    """Plain HTTP API client: the report needs nothing more than ``query_range``."""

    def __init__(self, url: str, timeout: float = 10.0, headers: Mapping[str, str] | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})

    def query_range(self, query: str, start: datetime, end: datetime,
                    step_seconds: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        response = requests.get(
            f"{self.url}/api/v1/query_range", headers=self.headers, timeout=self.timeout,
            params={"query": query, "start": start.timestamp(), "end": end.timestamp(),
                    "step": f"{step_seconds:g}"},
        )
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus: {body.get('error', body)}")
        return [
            (dict(item["metric"]), [(float(t), float(v)) for t, v in item["values"]])
            for item in body["data"]["result"]
        ]


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal: a hostile name cannot end the matcher."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def selector(model: str, namespace: str | None, extra: str = "") -> str:
    matchers = [f"model={promql_string(model)}"]
    if namespace:
        matchers.append(f"namespace={promql_string(namespace)}")
    if extra:
        matchers.append(extra)
    return "{" + ",".join(matchers) + "}"


def report_queries(model: str, namespace: str | None, window: str) -> dict[str, str]:
    """The PromQL behind each panel (also printed in the page, so it can be re-run)."""
    sel = selector(model, namespace)
    errors = selector(model, namespace, 'outcome="error"')
    return {
        # Served requests: a shadow's mirrored copies (counted by its shadow comparisons)
        # are taken out, so shares add up to ~100% of user traffic. Copies of requests
        # the answering version failed carry no stable prediction and are not compared,
        # so they still show as the shadow's (stable error rate x mirror share).
        "served_rate": (
            f"sum by (version) (rate(vigil_model_requests_total{sel}[{window}]))"
            f" - sum by (version) (rate(vigil_model_shadow_comparisons_total{sel}[{window}]))"
        ),
        "error_rate": (
            f"sum by (version) (rate(vigil_model_requests_total{errors}[{window}]))"
            f" / sum by (version) (rate(vigil_model_requests_total{sel}[{window}]))"
        ),
        "latency_p99": (
            "histogram_quantile(0.99, sum by (version, le) "
            f"(rate(vigil_model_request_duration_seconds_bucket{sel}[{window}])))"
        ),
    }


@dataclass
class ReportData:
    """Everything the page shows; built from Prometheus + decisions, rendered later."""

    model: str
    versions: tuple[str, ...]
    start: datetime
    end: datetime
    decisions: tuple[DecisionRecord, ...]
    traffic_share: Series = field(default_factory=dict)  # percent
    error_rate: Series = field(default_factory=dict)  # percent
    latency_p99: Series = field(default_factory=dict)  # milliseconds
    queries: dict[str, str] = field(default_factory=dict)
    gaps: dict[str, str] = field(default_factory=dict)  # panel -> why it has no data

    def drift_points(self) -> list[tuple[datetime, Verdict]]:
        return [(d.time, v) for d in self.decisions for v in d.verdicts
                if "drift" in v.metric.lower() and v.statistic is not None]


def _by_version(result: Iterable[tuple[dict[str, str], list[tuple[float, float]]]],
                versions: Sequence[str], scale: float) -> Series:
    series: Series = {}
    for labels, values in result:
        version = labels.get("version")
        if version not in versions:
            continue
        points = [(to_datetime(t), v * scale) for t, v in values if math.isfinite(v)]
        if points:
            series[version] = points
    return series


def collect(reader: RangeReader, model: str, versions: Sequence[str], start: datetime,
            end: datetime, decisions: Sequence[Mapping[str, Any]], *,
            namespace: str | None = None, window: str = "30s",
            step_seconds: float | None = None) -> ReportData:
    """Run the queries and shape the results; a failed query becomes a stated gap."""
    start, end = to_datetime(start), to_datetime(end)
    if end <= start:
        raise ValueError("the report's end must be after its start")
    step = step_seconds or max(1.0, (end - start).total_seconds() / 300.0)
    data = ReportData(model=model, versions=tuple(versions), start=start, end=end,
                      decisions=tuple(sorted((DecisionRecord.from_dict(d) for d in decisions),
                                             key=lambda d: d.time)),
                      queries=report_queries(model, namespace, window))

    def run(name: str, panel: str, scale: float) -> Series:
        try:
            series = _by_version(reader.query_range(data.queries[name], start, end, step),
                                 versions, scale)
        except Exception as exc:  # noqa: BLE001 - the page must still be written
            data.gaps[panel] = f"query failed: {type(exc).__name__}: {exc}"
            return {}
        if not series:
            data.gaps[panel] = "Prometheus returned no samples for these versions in this range"
        return series

    served = run("served_rate", "plot-weights", 1.0)
    data.traffic_share = _shares(served)
    data.error_rate = run("error_rate", "plot-error-rate", 100.0)
    data.latency_p99 = run("latency_p99", "plot-latency-p99", 1000.0)
    if not data.drift_points():
        data.gaps["plot-drift"] = "no decision carried a drift verdict with a statistic"
    return data


def _shares(rates: Series) -> Series:
    """Per-version percentage of all served requests at each timestamp."""
    totals: dict[datetime, float] = {}
    for points in rates.values():
        for t, v in points:
            totals[t] = totals.get(t, 0.0) + max(v, 0.0)
    return {
        version: [(t, 100.0 * max(v, 0.0) / totals[t]) for t, v in points if totals[t] > 0]
        for version, points in rates.items()
    }


# --- rendering ------------------------------------------------------------------------


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
        by_metric: dict[str, list[tuple[datetime, Verdict]]] = {}
        for t, verdict in data.drift_points():
            by_metric.setdefault(verdict.metric, []).append((t, verdict))
        for index, (metric, points) in enumerate(sorted(by_metric.items())):
            colour = VERSION_COLOURS[(index + 4) % len(VERSION_COLOURS)]
            ax.plot([t for t, _ in points], [v.statistic for _, v in points], "o-",
                    color=colour, label=f"{metric} statistic")
            failed = [(t, v.statistic) for t, v in points if v.outcome.lower() == "fail"]
            if failed:
                ax.plot(*zip(*failed), "X", color="#cf222e", ms=9, label=f"{metric} Fail")
            bounds = [(t, v.bound) for t, v in points if v.bound is not None]
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


def render_html(data: ReportData, panel_pngs: Mapping[str, bytes]) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Vigil rollout report: {esc(data.model)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "img{max-width:100%;border:1px solid #d0d7de;margin:.5em 0}"
        "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.25em .5em;"
        "font-size:.9em;text-align:left}.gap{color:#57606a}.promote{color:#1a7f37}"
        ".rollback{color:#cf222e}code{font-size:.85em}</style></head><body>",
        f'<h1 id="report-title">Vigil rollout report: {esc(data.model)}</h1>',
        f'<p id="report-range">Versions {esc(", ".join(data.versions))}; '
        f"{esc(data.start.isoformat())} to {esc(data.end.isoformat())} (UTC).</p>",
        '<section id="plots">',
    ]
    for panel_id, alt, _ in PANELS:
        encoded = base64.b64encode(panel_pngs[panel_id]).decode("ascii")
        parts.append(f'<figure><img id="{panel_id}" alt="{esc(alt)}" '
                     f'src="data:image/png;base64,{encoded}">')
        if panel_id in data.gaps:
            parts.append(f'<figcaption class="gap" id="{panel_id}-gap">no data: '
                         f"{esc(data.gaps[panel_id])}</figcaption>")
        parts.append("</figure>")
    parts.append("</section>")
    parts.append(f'<h2>Decisions ({len(data.decisions)})</h2><ol id="decisions">')
    for decision in data.decisions:
        verdicts = "; ".join(
            f"{v.metric}: {v.outcome}"
            + (f" (statistic {v.statistic:.4g}" if v.statistic is not None else "")
            + (f", bound {v.bound:.4g})" if v.bound is not None else (")" if v.statistic is not None else ""))
            for v in decision.verdicts
        )
        weight = "" if decision.weight is None else f"{decision.weight:g}"
        parts.append(
            f'<li class="decision-marker {_css_class(decision.decision)}" '
            f'data-decision="{esc(decision.decision)}" data-time="{esc(decision.time.isoformat())}" '
            f'data-phase="{esc(decision.phase)}" data-weight="{esc(weight)}">'
            f"<b>{esc(decision.time.strftime('%H:%M:%S'))} {esc(decision.decision)}</b> "
            f"phase {esc(decision.phase)}"
            + (f", weight {esc(weight)}%" if weight else "")
            + (f", version {esc(decision.version)}" if decision.version else "")
            + (f". {esc(decision.message)}" if decision.message else "")
            + (f'<div class="verdicts">{esc(verdicts)}</div>' if verdicts else "")
            + "</li>"
        )
    parts.append('</ol><h2>Queries</h2><ul id="queries">')
    for name, query in data.queries.items():
        parts.append(f"<li>{esc(name)}: <code>{esc(query)}</code></li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def _css_class(text: str) -> str:
    """A decision name as one safe CSS class (``Roll back`` -> ``roll-back``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path


def write_report(data: ReportData, out_dir: Path, name: str = "report") -> ReportFiles:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = {panel_id: render_panel_png(data, panel_id) for panel_id, _, _ in PANELS}
    files = ReportFiles(html=out_dir / f"{name}.html", png=out_dir / f"{name}.png")
    files.html.write_text(render_html(data, pngs), encoding="utf-8")
    files.png.write_bytes(render_combined_png(data))
    return files


def build_report(prometheus_url: str, start: datetime | str | float, end: datetime | str | float,
                 model: str, versions: Sequence[str], decisions: Sequence[Mapping[str, Any]],
                 out_dir: Path, *, namespace: str | None = None, window: str = "30s",
                 step_seconds: float | None = None, reader: RangeReader | None = None,
                 name: str = "report") -> ReportFiles:
    """Query Prometheus, draw, and write ``<name>.html`` and ``<name>.png`` into out_dir."""
    data = collect(reader or PrometheusHTTPReader(prometheus_url), model, versions,
                   to_datetime(start), to_datetime(end), decisions, namespace=namespace,
                   window=window, step_seconds=step_seconds)
    return write_report(data, out_dir, name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vigil.demo.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--versions", required=True, help="comma-separated")
    parser.add_argument("--namespace")
    parser.add_argument("--start", required=True, help="ISO-8601 or epoch seconds")
    parser.add_argument("--end", required=True)
    parser.add_argument("--decisions", type=Path, required=True,
                        help="JSON list of decision records (or one JSON object per line)")
    parser.add_argument("--window", default="30s", help="rate() window")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    text = args.decisions.read_text()
    decisions = (json.loads(text) if text.lstrip().startswith("[")
                 else [json.loads(line) for line in text.splitlines() if line.strip()])

    def when(raw: str) -> datetime | float:
        try:
            return float(raw)
        except ValueError:
            return to_datetime(raw)

    files = build_report(args.prometheus, when(args.start), when(args.end), args.model,
                         [v for v in args.versions.split(",") if v], decisions, args.out,
                         namespace=args.namespace, window=args.window)
    print(files.html)
    print(files.png)


if __name__ == "__main__":
    main()
