"""What one analysis compares: a model's baseline and canary versions in a namespace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vigil.metrics.promql import RESERVED, InvalidLabel, check_name, check_value


@dataclass(frozen=True)
class AnalysisTarget:
    """The series to read. `extra_matchers` narrows them further (e.g. {"cluster": "eu-1"})."""

    namespace: str
    model: str
    baseline_version: str
    canary_version: str
    extra_matchers: Mapping[str, str] = field(default_factory=dict)
    baseline_matchers: Mapping[str, str] = field(default_factory=dict)
    """Matchers for the baseline arm only: with a fresh baseline, {"track": "baseline"} keeps
    the stable pods out of the comparison (the scrape config maps the pod label
    `vigil.dev/track` to `track`; see docs/metrics-contract.md)."""
    preset: str = "vigil"
    """Whose metric names to read (`spec.analysis.metricsPreset`: vigil, kserve, vllm, triton, seldon)."""

    def validate(self, namespace_label: str = "namespace") -> None:
        """Raise InvalidLabel naming the offending field; the provider turns it into NoData."""
        check_value("namespace", self.namespace)
        check_value("model", self.model)
        check_value("baseline version", self.baseline_version)
        check_value("canary version", self.canary_version)
        if self.baseline_version == self.canary_version:
            raise InvalidLabel(f"baseline and canary are the same version {self.canary_version!r}")
        for name, value in {**self.extra_matchers, **self.baseline_matchers}.items():
            check_name(name)
            if name in RESERVED or name == namespace_label:
                raise InvalidLabel(f"extra matcher {name!r} would override a label Vigil sets itself")
            if not isinstance(value, str) or len(value) > 256 or any(ord(ch) < 32 for ch in value):
                raise InvalidLabel(f"extra matcher {name}={value!r}: use at most 256 printable characters")

    def matchers(self, version: str, namespace_label: str = "namespace") -> dict[str, str]:
        arm = self.baseline_matchers if version == self.baseline_version else {}
        return {namespace_label: self.namespace, "model": self.model, "version": version,
                **self.extra_matchers, **arm}
