"""The rollout report as files: one self-contained HTML page (Jinja2) and a combined PNG.

The page embeds every panel as a PNG (no scripts, no links out), lists the decisions with
their verdicts, and prints the PromQL behind each panel so it can be re-run. The data comes
from `vigil.demo.report_data`, the plots from `vigil.demo.report_figures`.

    python -m vigil.demo.report_page --prometheus http://127.0.0.1:9090 --model iris \
        --versions v1,v2,v3 --start 2026-01-01T10:00:00Z --end 2026-01-01T10:05:00Z \
        --decisions decisions.json --out report/
"""

from __future__ import annotations

import argparse
import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from vigil.demo.report_data import PrometheusRangeReader, RangeReader, ReportData, collect, to_datetime
from vigil.demo.report_figures import PANELS, render_combined_png, render_panel_png

PAGE = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Vigil rollout report: {{ data.model }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}
img{max-width:100%;border:1px solid #d0d7de;margin:.5em 0}
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.25em .5em;font-size:.9em;text-align:left}
.gap{color:#57606a}.promote{color:#1a7f37}.rollback{color:#cf222e}code{font-size:.85em}</style></head><body>
<h1 id="report-title">Vigil rollout report: {{ data.model }}</h1>
<p id="report-range">Versions {{ data.versions | join(", ") }}; {{ data.start.isoformat() }} to {{ data.end.isoformat() }} (UTC).</p>
<section id="plots">
{%- for panel_id, alt, _ in panels %}
<figure><img id="{{ panel_id }}" alt="{{ alt }}" src="data:image/png;base64,{{ pngs[panel_id] | base64 }}">
{%- if panel_id in data.gaps %}
<figcaption class="gap" id="{{ panel_id }}-gap">no data: {{ data.gaps[panel_id] }}</figcaption>
{%- endif %}
</figure>
{%- endfor %}
</section>
<h2>Decisions ({{ data.decisions | length }})</h2><ol id="decisions">
{%- for d in data.decisions %}
<li class="decision-marker {{ d.decision | css_class }}" data-decision="{{ d.decision }}" \
data-time="{{ d.time.isoformat() }}" data-phase="{{ d.phase }}" data-weight="{{ d.weight_text }}">\
<b>{{ d.time.strftime("%H:%M:%S") }} {{ d.decision }}</b> phase {{ d.phase }}
{%- if d.weight_text %}, weight {{ d.weight_text }}%{% endif %}
{%- if d.version %}, version {{ d.version }}{% endif %}
{%- if d.message %}. {{ d.message }}{% endif %}
{%- if d.verdicts %}<div class="verdicts">{{ d.verdicts_text() }}</div>{% endif %}</li>
{%- endfor %}
</ol><h2>Queries</h2><ul id="queries">
{%- for name, query in data.queries.items() %}
<li>{{ name }}: <code>{{ query }}</code></li>
{%- endfor %}
</ul></body></html>
"""


def css_class(text: str) -> str:
    """A decision name as one safe CSS class (``Roll back`` -> ``roll-back``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def _environment() -> Environment:
    """Autoescaping on: decision messages and names come from the cluster, not from us."""
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["base64"] = lambda raw: base64.b64encode(raw).decode("ascii")
    env.filters["css_class"] = css_class
    return env


TEMPLATE = _environment().from_string(PAGE)


def render_html(data: ReportData, panel_pngs: Mapping[str, bytes]) -> str:
    """The page: every panel as an embedded PNG, the decisions, the queries."""
    return TEMPLATE.render(data=data, panels=PANELS, pngs=panel_pngs)


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
    data = collect(reader or PrometheusRangeReader(prometheus_url), model, versions,
                   to_datetime(start), to_datetime(end), decisions, namespace=namespace,
                   window=window, step_seconds=step_seconds)
    return write_report(data, out_dir, name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vigil.demo.report_page", description=__doc__,
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
