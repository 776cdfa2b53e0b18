"""The operator killed at write points of real rollouts, on the real apiserver (a sample).

The full sweep (every write, before and after it, both scenarios) is `make killpoints`;
CI runs every 8th kill point of the same harness (see tests/killpoints.py for the checks).
"""

from __future__ import annotations

import pytest

from ..conftest import KubeHandle
from ..killpoints import Harness, sweep

pytestmark = pytest.mark.slow


def test_killed_rollouts_end_like_uninterrupted_ones_on_the_record(kube: KubeHandle) -> None:
    harness = Harness(kube.client_for)
    lines: list[str] = []
    survived, total, failures = sweep(harness, ["promote", "rollback"], every=8, report=lines.append)
    print("\n".join(lines), f"\nkill points survived: {survived}/{total}")
    assert total >= 10, lines
    assert not failures, "\n".join(failures)
