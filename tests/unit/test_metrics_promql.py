"""Label values in queries: validated, then escaped, so a crafted name cannot change a query."""

from __future__ import annotations

import pytest

from vigil.metrics.promql import InvalidLabel, check_value, escape, selector
from vigil.metrics.queries import counters_query, freshness_query
from vigil.metrics.target import AnalysisTarget
from vigil.api.gates import MetricKind

HOSTILE = [
    'v2"} or vector(1) or up{x="',
    'v2",version=~".*',
    "v2\n",
    "v2\\",
    ".*",
    "v2 or 1",
    "",
    "a" * 64,
    "ünïcode",
    "-leading-dash",
    "v2}",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_rejected_with_the_field_named(value: str) -> None:
    with pytest.raises(InvalidLabel, match="canary version"):
        check_value("canary version", value)


@pytest.mark.parametrize("value", ["v2", "1.4.0", "model-a_b.c", "A", "x" * 63])
def test_kubernetes_label_values_are_accepted(value: str) -> None:
    assert check_value("version", value) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_escaping_keeps_any_value_inside_one_string_literal(value: str) -> None:
    query = selector("m", {"model": value})
    body = query[len('m{model="'):-2]
    # un-escape and check we get the value back, and no unescaped quote ends the literal early
    i, out = 0, []
    while i < len(body):
        ch = body[i]
        assert ch != '"', query
        if ch == "\\":
            out.append({"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}[body[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    assert "".join(out) == value and query.endswith('"}')


def test_escape_of_quote_and_backslash() -> None:
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_selector_checks_label_names() -> None:
    with pytest.raises(InvalidLabel, match="label name"):
        selector("m", {"bad-name": "x"})


def test_target_validation_names_the_problem() -> None:
    with pytest.raises(InvalidLabel, match="same version"):
        AnalysisTarget("ns", "m", "v1", "v1").validate()
    with pytest.raises(InvalidLabel, match="override"):
        AnalysisTarget("ns", "m", "v1", "v2", extra_matchers={"version": "v3"}).validate()
    with pytest.raises(InvalidLabel, match="printable"):
        AnalysisTarget("ns", "m", "v1", "v2", extra_matchers={"cluster": "eu\n1"}).validate()
    with pytest.raises(InvalidLabel, match="namespace"):
        AnalysisTarget("Bad Namespace", "m", "v1", "v2").validate()
    AnalysisTarget("ns", "m", "v1", "v2", extra_matchers={"cluster": 'eu-1"}'}).validate()  # escaped, allowed


def test_queries_read_raw_counters_per_series_for_both_versions() -> None:
    target = AnalysisTarget("shop", "ranker", "v1", "v2")
    q = counters_query(MetricKind.ERROR_RATE, target)
    assert q == ('vigil_model_requests_total{namespace="shop",model="ranker",version="v1"} or '
                 'vigil_model_requests_total{namespace="shop",model="ranker",version="v2"}')
    for kind in MetricKind:
        text = counters_query(kind, target) + freshness_query(kind, target)
        assert not any(f in text for f in ("rate(", "increase(", "sum(", "sum by"))
    assert "v1" not in counters_query(MetricKind.SHADOW_DISAGREEMENT, target)
    assert counters_query(MetricKind.LATENCY_P50, target) == counters_query(MetricKind.LATENCY_P99, target)
    assert "_bucket" in counters_query(MetricKind.LATENCY_P99, target)


def test_namespace_label_is_configurable() -> None:
    target = AnalysisTarget("shop", "ranker", "v1", "v2")
    assert 'exported_namespace="shop"' in counters_query(MetricKind.ERROR_RATE, target, "exported_namespace")
