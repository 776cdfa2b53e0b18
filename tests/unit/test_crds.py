"""The committed CRDs are generated from the pydantic models and must not drift from them."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from vigil.api import crdgen
from vigil.api.modeldeployment import ModelDeploymentSpec
from vigil.api.policy import RiskPolicySpec


def test_committed_crds_match_the_models(tmp_path) -> None:
    assert crdgen.main(["--check"]) == 0, "crds/ drifted from operator/vigil/api: run python -m vigil.api.crdgen"


def test_crds_are_structural_and_have_status_and_columns() -> None:
    md = yaml.safe_load((crdgen.CRD_DIR / "vigil.dev_modeldeployments.yaml").read_text())
    version = md["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert md["spec"]["names"]["shortNames"] == ["md"]
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Version", "Canary Weight", "Verdict", "Age"} <= columns
    text = yaml.safe_dump(md)
    assert "$ref" not in text and "anyOf" not in text and "title" not in text
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert any("gatewayRef" in r["rule"] for r in rules)


def test_bad_policy_error_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        RiskPolicySpec.model_validate({"steps": [10, 5], "maxWeight": 50})
    assert "steps" in str(err.value) and "increasing" in str(err.value)
    with pytest.raises(ValidationError) as err:
        RiskPolicySpec.model_validate({"steps": [10, 80], "maxWeight": 50})
    assert "maxWeight" in str(err.value)
    with pytest.raises(ValidationError) as err:
        RiskPolicySpec.model_validate({"bakeTime": "five minutes"})
    assert "bakeTime" in str(err.value)


def test_bad_modeldeployment_error_names_the_field() -> None:
    base = {"model": "m", "version": "v1", "artifact": {"uri": "s3://x", "digest": "sha256:" + "a" * 64},
            "server": {"image": "i"}, "policyRef": {"name": "p"}, "traffic": {"router": "istio"}}
    ModelDeploymentSpec.model_validate(base)
    with pytest.raises(ValidationError) as err:
        ModelDeploymentSpec.model_validate({**base, "artifact": {"uri": "s3://x", "digest": "md5:abc"}})
    assert "artifact.digest" in str(err.value).replace("\n", ".").replace(" ", "") or "digest" in str(err.value)
    with pytest.raises(ValidationError) as err:
        ModelDeploymentSpec.model_validate({**base, "traffic": {"router": "gatewayapi"}})
    assert "gatewayRef" in str(err.value)
    with pytest.raises(ValidationError) as err:
        ModelDeploymentSpec.model_validate({**base, "traffic": {"router": "nginx"}})
    assert "gatewayapi" in str(err.value) and "istio" in str(err.value)


def test_numeric_bounds_are_in_the_openapi_v3_form_kubernetes_reads() -> None:
    """pydantic's gt= gives JSON Schema 2020's numeric exclusiveMinimum; the apiserver refuses it."""
    def walk(node: object) -> list[object]:
        if isinstance(node, dict):
            found = [v for k, v in node.items() if k in ("exclusiveMinimum", "exclusiveMaximum")]
            return found + [x for v in node.values() for x in walk(v)]
        if isinstance(node, list):
            return [x for v in node for x in walk(v)]
        return []

    schema = crdgen.structural(RiskPolicySpec.model_json_schema(), RiskPolicySpec.model_json_schema().get("$defs", {}))
    assert all(v is True for v in walk(schema))
    node = crdgen.structural({"type": "number", "exclusiveMinimum": 0.0}, {})
    assert node == {"type": "number", "minimum": 0.0, "exclusiveMinimum": True}
