"""Computing a pass's analysis ahead: `analysis_request` says what `decide` will ask for, and a
rollout whose analyses are computed together with other rollouts' decides exactly as alone."""

from __future__ import annotations

from typing import Any

from vigil.core import decide as core

from bench.rollout_sim import Rollout, Version, run_rollout, run_together
from bench.timing import shipped_policy

POLICY = shipped_policy()


def test_every_analysis_of_a_rollout_is_the_one_requested_ahead() -> None:
    """Through a whole rollout (shadow, steps, holdback), each pass that analyses asks its analyzer
    for exactly the request computed before `decide` (the same metrics, gates and arguments), so
    a caller that computed it ahead answers every one; a pass that does not analyse is not asked."""
    rollout = Rollout(POLICY, Version(), 1000.0, seed=3)
    asked = answered = 0
    while rollout.outcome is None:
        request = rollout.observe()
        hits: list[bool] = []

        def analyzer(gates: Any, metrics: Any, **kwargs: Any) -> Any:
            hits.append(request is not None and metrics is request.metrics and list(gates) == request.gates
                        and {**core.ANALYZER_DEFAULTS, **kwargs} == request.kwargs)
            return core.default_analyzer(gates, metrics, **kwargs)

        rollout.decide(analyzer)
        asked += len(hits)
        answered += sum(hits)
    assert rollout.outcome.end == "promoted"
    assert asked > 50 and answered == asked


def test_a_precomputed_analyzer_answers_only_its_request() -> None:
    """Asked for anything else than its request, it computes that with its fallback."""
    rollout = Rollout(POLICY, Version(), 1000.0, seed=1)
    request = None
    while request is None:
        request = rollout.observe()
        if request is None:
            rollout.decide()
    sentinel, other = object(), object()
    analyzer = core.precomputed_analyzer(request, sentinel, fallback=lambda *_, **__: other)  # type: ignore[arg-type]
    assert analyzer(request.gates, request.metrics, **{k: v for k, v in request.kwargs.items() if k != "deferred"}) is sentinel
    assert analyzer(request.gates, dict(request.metrics), **request.kwargs) is other  # another metrics object
    assert analyzer(request.gates[:1], request.metrics, **request.kwargs) is other
    assert analyzer(request.gates, request.metrics, **{**request.kwargs, "alpha_fail": 0.5}) is other


def test_rollouts_run_together_end_as_they_do_alone() -> None:
    """Healthy and regressed versions side by side, started at different minutes, their analyses
    computed together each minute: every rollout ends as it does alone, at the same minute."""
    cases = [(Version(), 1), (Version(error=0.03), 2), (Version(), 3), (Version(error=0.03), 4)]
    alone = [run_rollout(POLICY, v, 1000.0, seed) for v, seed in cases]
    together = run_together([Rollout(POLICY, v, 1000.0, seed) for v, seed in cases], starts=[0, 0, 2, 5])
    assert together == alone
    assert {o.end for o in alone} == {"promoted", "rolled-back"}
