"""The verdicts' evidence of many windows at once: one call per group of windows that share it.

An analysis spends most of its time in numpy's per-call overhead, not in arithmetic: a window's
arrays are small. The evidence functions take leading batch axes and are batch-invariant (each
row of a call on stacked windows equals that window's own call, bit for bit), so windows whose
`EvidenceCall`s have the same key (the same gate, arguments and shapes) are evaluated as the
rows of one call, and each verdict reads its row: the same figures for a fraction of the calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping
from typing import TypeVar

import numpy as np

from vigil.stats.evidence import EvidenceCall, GateEvidence

K = TypeVar("K", bound=Hashable)

FAULTS = (ValueError, ArithmeticError, IndexError)
"""What malformed counters raise in an evidence function (`analyze` reports them as NoData)."""


def evidence_together(calls: Mapping[K, EvidenceCall]) -> dict[K, GateEvidence]:
    """Each call's evidence, calls with equal keys evaluated as the rows of one call. A call that
    fails is left out (its verdict computes it again and reports the error as it would alone);
    a shared call that fails is redone window by window, so one window's bad counters never
    cost another window its verdict."""
    groups: dict[Hashable, list[K]] = defaultdict(list)
    for name, call in calls.items():
        groups[(name,) if call.key is None else (None, call.key)].append(name)
    out: dict[K, GateEvidence] = {}
    for names in groups.values():
        if len(names) > 1:
            try:
                out |= _rows(names, calls)
                continue
            except FAULTS:
                pass
        for name in names:
            try:
                out[name] = calls[name]()
            except FAULTS:
                pass
    return out


def _rows(names: list[K], calls: Mapping[K, EvidenceCall]) -> dict[K, GateEvidence]:
    """One call on the windows' arrays stacked on a new leading axis, split into their rows."""
    first = calls[names[0]]
    stacked = [np.array([calls[name].arrays[i] for name in names]) for i in range(len(first.arrays))]
    ev = first.compute(*stacked)
    fields = (ev.log_e_fail, ev.log_e_pass, ev.n_canary, ev.n_baseline)
    return {name: GateEvidence(*(f[row] for f in fields)) for row, name in enumerate(names)}
