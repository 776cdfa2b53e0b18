"""The report page: plots with stable ids, one marker per decision, gaps stated, nothing external."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from vigil.demo.report_data import collect, report_queries, to_datetime
from vigil.demo.report_figures import PANELS
from vigil.demo.report_page import write_report
from vigil.metrics.promql import escape


def promql_string(value: str) -> str:
    """The report's string literals are the one escaper's output, quoted."""
    return f'"{escape(value)}"'

START = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
END = START + timedelta(minutes=4)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakePrometheus:
    """Answers range queries with flat series per version, and records the queries."""

    def __init__(self, fail: bool = False, empty: bool = False) -> None:
        self.fail, self.empty = fail, empty
        self.queries: list[str] = []

    def query_range(self, query: str, start: datetime, end: datetime, step: float) -> list[Any]:
        self.queries.append(query)
        if self.fail:
            raise ConnectionError("connection refused")
        if self.empty:
            return []
        times = [start.timestamp() + i * step for i in range(int((end - start).total_seconds() / step) + 1)]
        if "histogram_quantile" in query:
            values = {"v1": 0.02, "v2": 0.3}
        elif 'outcome="error"' in query:
            values = {"v1": 0.01, "v2": 0.01}
        else:
            values = {"v1": 9.0, "v2": 1.0, "other": 5.0}
        return [({"version": v}, [(t, x) for t in times]) for v, x in values.items()]


DECISIONS = [
    {"time": START + timedelta(seconds=20), "decision": "step", "phase": "Shadow", "weight": 0,
     "verdicts": [{"metric": "shadowDisagreement", "outcome": "Pass", "statistic": 0.01, "bound": 0.02}]},
    {"time": (START + timedelta(seconds=60)).isoformat(), "decision": "step", "phase": "Canary",
     "weight": 10, "version": "v2",
     "verdicts": [{"metric": "predictionDrift", "outcome": "Inconclusive", "statistic": 1.5, "bound": 20.0}]},
    {"time": (START + timedelta(seconds=120)).timestamp(), "decision": "rollback", "phase": "RolledBack",
     "weight": 0, "message": "drift <script>",
     "verdicts": [{"metric": "predictionDrift", "outcome": "Fail", "statistic": 31.0, "bound": 20.0},
                  {"metric": "errorRate", "outcome": "Pass", "statistic": None, "bound": None}]},
]


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, dict[str, str]] = {}
        self.markers: list[dict[str, str]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images[attributes["id"]] = attributes
        if "decision-marker" in attributes.get("class", "").split():
            self.markers.append(attributes)
        for key in ("src", "href"):
            if key in attributes and not attributes[key].startswith("data:"):
                self.external.append(attributes[key])
        if tag == "script":
            self.external.append("script")


def build(tmp_path: Path, prometheus: FakePrometheus) -> tuple[Any, PageParser, str]:
    data = collect(prometheus, "iris", ["v1", "v2"], START, END, DECISIONS, namespace="demo")
    files = write_report(data, tmp_path)
    html = files.html.read_text()
    parser = PageParser()
    parser.feed(html)
    return files, parser, html


def test_page_has_every_plot_as_an_embedded_png_with_alt_text(tmp_path: Path) -> None:
    files, page, _ = build(tmp_path, FakePrometheus())
    assert set(page.images) == {panel_id for panel_id, _, _ in PANELS}
    assert page.images["plot-weights"]["alt"] == "traffic weights"
    assert page.images["plot-latency-p99"]["alt"] == "latency p99"
    for image in page.images.values():
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        assert base64.b64decode(image["src"][len(prefix):]).startswith(PNG_MAGIC)
    assert page.external == []  # self-contained: no scripts, no links out
    assert files.png.read_bytes().startswith(PNG_MAGIC)
    assert files.png.stat().st_size > 20_000


def test_one_marker_per_decision_in_time_order(tmp_path: Path) -> None:
    _, page, html = build(tmp_path, FakePrometheus())
    assert [m["data-decision"] for m in page.markers] == ["step", "step", "rollback"]
    assert [m["data-weight"] for m in page.markers] == ["0", "10", "0"]
    assert [to_datetime(m["data-time"]) for m in page.markers] == [
        START + timedelta(seconds=s) for s in (20, 60, 120)]
    assert "rollback" in page.markers[2]["class"].split()
    assert "predictionDrift: Fail (statistic 31, bound 20)" in html
    assert "drift &lt;script&gt;" in html and "<script>" not in html


def test_queries_are_scoped_to_the_model_and_namespace(tmp_path: Path) -> None:
    prometheus = FakePrometheus()
    build(tmp_path, prometheus)
    assert len(prometheus.queries) == 3
    for query in prometheus.queries:
        assert 'model="iris"' in query and 'namespace="demo"' in query
    assert any("histogram_quantile(0.99" in q for q in prometheus.queries)


def test_shares_and_values_are_computed_for_the_asked_versions_only() -> None:
    data = collect(FakePrometheus(), "iris", ["v1", "v2"], START, END, DECISIONS)
    assert set(data.traffic_share) == {"v1", "v2"}
    assert data.traffic_share["v1"][0][1] == pytest.approx(90.0)
    assert data.error_rate["v2"][0][1] == pytest.approx(1.0)
    assert data.latency_p99["v2"][0][1] == pytest.approx(300.0)
    assert [round(v.statistic, 1) for _, v in data.drift_points()] == [1.5, 31.0]
    assert data.gaps == {}


@pytest.mark.parametrize("prometheus, reason", [
    (FakePrometheus(fail=True), "query failed: ConnectionError"),
    (FakePrometheus(empty=True), "no samples"),
])
def test_missing_data_is_stated_not_drawn_as_zero(tmp_path: Path, prometheus: FakePrometheus,
                                                  reason: str) -> None:
    _, page, html = build(tmp_path, prometheus)
    assert set(page.images) == {panel_id for panel_id, _, _ in PANELS}  # still written
    for panel_id in ("plot-weights", "plot-error-rate", "plot-latency-p99"):
        assert re.search(f'id="{panel_id}-gap">no data: [^<]*{reason}', html)
    assert 'id="plot-drift-gap"' not in html  # drift comes from the decisions


def test_no_drift_verdicts_is_a_stated_gap(tmp_path: Path) -> None:
    data = collect(FakePrometheus(), "iris", ["v1"], START, END,
                   [{"time": START, "decision": "promote", "phase": "Promoted", "weight": 100}])
    assert "plot-drift" in data.gaps


def test_hostile_names_cannot_escape_the_matcher() -> None:
    assert promql_string('x"} or vector(1) or {a="') == '"x\\"} or vector(1) or {a=\\""'
    queries = report_queries('iris"}', None, "30s")
    assert 'model="iris\\"}"' in queries["error_rate"]


def test_times_in_any_usual_form() -> None:
    expected = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    assert to_datetime("2026-01-01T10:00:00Z") == expected
    assert to_datetime(expected.timestamp()) == expected
    assert to_datetime(datetime(2026, 1, 1, 10, 0)) == expected
    with pytest.raises(ValueError):
        collect(FakePrometheus(), "iris", ["v1"], END, START, [])
