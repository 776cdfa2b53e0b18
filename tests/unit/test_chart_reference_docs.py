"""The field references shipped beside the chart (docs/reference/) are generated from the
pydantic models (`python3 -m vigil.api.docgen`); they must be current, so a reader never
learns a field, default or bound the apiserver does not enforce."""

from __future__ import annotations

from vigil.api import docgen
from vigil.api.policy import RiskPolicySpec


def test_the_references_are_current() -> None:
    stale = [str(p.relative_to(docgen.REPO)) for p, text in docgen.render_all().items()
             if not p.exists() or p.read_text() != text]
    assert not stale, f"{stale} are stale: run `python3 -m vigil.api.docgen` (or `make docs`)"
    assert docgen.main(["--check"]) == 0


def test_every_riskpolicy_field_is_documented_with_its_bounds() -> None:
    text = (docgen.OUT_DIR / "riskpolicy.md").read_text()
    for field in RiskPolicySpec.model_fields.values():
        assert f"| `spec.{field.alias}` |" in text, field.alias
    assert "| `spec.confidence` | number | `0.95` | >= 0.5, <= 0.9999 |" in text
    assert "| `spec.steps` | []integer | `[10, 25, 50]` |" in text
    assert "every steps[] weight must be <= maxWeight" in text  # the CEL rules


def test_a_changed_model_makes_the_check_fail(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(docgen, "OUT_DIR", tmp_path)
    monkeypatch.setattr(docgen, "REPO", tmp_path)
    assert docgen.main(["--check"]) == 1  # nothing written yet
    assert docgen.main([]) == 0 and docgen.main(["--check"]) == 0
    (tmp_path / "riskpolicy.md").write_text("old\n")
    assert docgen.main(["--check"]) == 1
