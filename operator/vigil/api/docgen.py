"""Generate the field references in docs/reference/ from the pydantic models.

    python -m vigil.api.docgen          # write docs/reference/{riskpolicy,modeldeployment}.md
    python -m vigil.api.docgen --check  # exit 1 if the committed files differ

The models are the one source of truth for the CRDs (`crdgen`) and for these pages, so the
reference says exactly what the apiserver enforces: the same structural schema, walked field
by field (type, default, allowed values and bounds, description), and the CEL rules.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vigil.api.crdgen import model_schema
from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from vigil.api.names import API_VERSION
from vigil.api.policy import RiskPolicySpec

REPO = Path(__file__).resolve().parents[3]
OUT_DIR = REPO / "docs" / "reference"


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    allowed: str
    description: str


def _type(node: dict[str, Any]) -> str:
    t = node.get("type", "object" if "properties" in node else "any")
    if t == "array":
        return f"[]{_type(node.get('items') or {})}"
    if t == "object" and "additionalProperties" in node:
        return f"map[string]{_type(node['additionalProperties'])}"
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return "object (free-form)"
    return str(t)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _allowed(node: dict[str, Any]) -> str:
    parts: list[str] = []
    if "enum" in node:
        parts.append(" | ".join(f"`{v}`" for v in node["enum"]))
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None or high is not None:
        lo = "" if low is None else (f"> {_num(low)}" if node.get("exclusiveMinimum") is True else f">= {_num(low)}")
        hi = "" if high is None else (f"< {_num(high)}" if node.get("exclusiveMaximum") is True else f"<= {_num(high)}")
        parts.append(", ".join(p for p in (lo, hi) if p))
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    for key, what in (("minLength", "length >="), ("maxLength", "length <="),
                      ("minItems", "items >="), ("maxItems", "items <=")):
        if key in node:
            parts.append(f"{what} {node[key]}")
    items = node.get("items") or {}
    if node.get("type") == "array" and ("minimum" in items or "maximum" in items):
        parts.append("each " + _allowed({k: v for k, v in items.items() if k in ("minimum", "maximum")}))
    return "; ".join(parts)


def _default(node: dict[str, Any]) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    if isinstance(value, (dict, list)) and len(json.dumps(value)) > 60:
        return "(see fields)" if isinstance(value, dict) else f"`{json.dumps(value)[:57]}...`"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _with_factory_defaults(schema: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """JSON Schema has no default for a `default_factory` field (a list, a nested model):
    take it from the model, so the reference shows e.g. the default steps."""
    props = dict(schema.get("properties") or {})
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in props and "default" not in props[key] and info.default_factory is not None:
            value = info.get_default(call_default_factory=True)
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
            elif isinstance(value, list):
                value = [v.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(v, BaseModel)
                         else v for v in value]
            props[key] = {**props[key], "default": value}
    return {**schema, "properties": props}


def rows(node: dict[str, Any], path: str) -> Iterator[Row]:
    """Every field under `node`, depth first, in the models' declaration order."""
    required = set(node.get("required") or [])
    for name, sub in (node.get("properties") or {}).items():
        field = f"{path}.{name}"
        description = sub.get("description", "")
        if name in required:
            description = "**Required.** " + description
        if sub.get("nullable"):
            description += " Optional (may be omitted)."
        yield Row(field, _type(sub), _default(sub), _allowed(sub), description.strip())
        if "properties" in sub:
            yield from rows(sub, field)
        elif sub.get("type") == "array" and "properties" in (sub.get("items") or {}):
            yield from rows(sub["items"], f"{field}[]")


def _table(all_rows: list[Row]) -> str:
    lines = ["| Field | Type | Default | Allowed | Description |", "|---|---|---|---|---|"]
    for r in all_rows:
        lines.append(f"| `{r.path}` | {_cell(r.type)} | {_cell(r.default)} | {_cell(r.allowed)} | {_cell(r.description)} |")
    return "\n".join(lines)


def _rules(schema: dict[str, Any]) -> str:
    rules = schema.get("x-kubernetes-validations") or []
    if not rules:
        return ""
    out = ["Rules the apiserver checks on the whole spec (CEL, so `kubectl apply` refuses a bad object at once):", ""]
    out += [f"- `{r.get('fieldPath', '')}`: {r['message']} (`{r['rule']}`)" for r in rules]
    return "\n".join(out) + "\n"


def _doc(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def page(kind: str, plural: str, short: str, parts: list[tuple[str, type[BaseModel]]], intro: str) -> str:
    out = [f"# {kind} reference", "",
           "<!-- Generated by `python3 -m vigil.api.docgen` from `operator/vigil/api`. Do not edit. -->", "",
           f"`apiVersion: {API_VERSION}`, `kind: {kind}` (plural `{plural}`, short name `{short}`), namespaced.", "",
           intro, ""]
    for section, model in parts:
        schema = _with_factory_defaults(model_schema(model), model)
        out += [f"## `{section}`", "", _doc(model), ""]
        rules = _rules(schema)
        if rules:
            out += [rules]
        out += [_table(list(rows(schema, section))), ""]
    return "\n".join(out).rstrip() + "\n"


def render_all() -> dict[Path, str]:
    return {
        OUT_DIR / "riskpolicy.md": page(
            "RiskPolicy", "riskpolicies", "rp", [("spec", RiskPolicySpec)],
            "How much a new model version must prove before it gets more traffic; one RiskPolicy governs "
            "the ModelDeployments of its namespace that name it in `spec.policyRef`. How these fields "
            "decide a rollout: [docs/rollouts.md](../rollouts.md). The chart can install one per risk "
            "tier ([docs/install.md](../install.md#default-riskpolicies-per-tier))."),
        OUT_DIR / "modeldeployment.md": page(
            "ModelDeployment", "modeldeployments", "md",
            [("spec", ModelDeploymentSpec), ("status", ModelDeploymentStatus)],
            "A model served by Vigil: change `spec.version` and `spec.artifact.digest` and Vigil rolls the "
            "new version out under the named RiskPolicy. Vigil never writes the spec; `status` is its only "
            "memory and is written by the operator alone."),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    args = p.parse_args(argv)
    stale = []
    for path, text in render_all().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(REPO)))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run `python3 -m vigil.api.docgen`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
