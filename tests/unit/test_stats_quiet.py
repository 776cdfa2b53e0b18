"""numpy's warnings are switched off once per analysis (`vigil.stats.quiet`): a step called on
its own still silences what it expects, an analysis shows none, and the caller's settings return."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from vigil.stats.evidence import ratio
from vigil.stats.quiet import IGNORED, quiet, quietly
from vigil.stats.sequential import exposure_ratio, logsumexp


def test_a_step_called_alone_silences_its_own_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf  # log(0): divide, silenced by the step
        assert np.isnan(ratio(1.0, 0.0)) and ratio(3.0, 2.0) == 1.5
        np.testing.assert_array_equal(exposure_ratio(np.array([2.0, 1.0]), np.array([0.0, 4.0]), 2.0),
                                      np.array([np.inf, 0.5]))


def test_outside_a_quiet_step_numpy_warns_as_the_caller_set_it() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with quiet(divide="ignore"):
            np.log(np.zeros(1))
        with pytest.raises(RuntimeWarning):
            np.log(np.zeros(1))  # the step's setting did not leak


def test_quietly_ignores_every_setting_once_and_restores_the_callers() -> None:
    before = np.geterr()
    inner: list[dict[str, str]] = []

    @quietly
    def analysis() -> None:
        with quiet(divide="ignore"):  # nothing more to enter: the whole call is already quiet
            inner.append(np.geterr())
        inner.append(np.geterr())
        np.log(np.zeros(1)), np.ones(1) / 0.0, np.array([1e308]) * 10.0, np.zeros(1) / 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        analysis()
    assert all({k: s[k] for k in IGNORED} == IGNORED for s in inner)
    assert np.geterr() == before


def test_quiet_is_per_thread() -> None:
    """An analysis on one reconcile thread never silences another thread's numpy."""
    before = np.geterr()
    started, release = threading.Event(), threading.Event()
    inside: list[dict[str, str]] = []

    @quietly
    def slow_analysis() -> None:
        inside.append(np.geterr())
        started.set()
        release.wait(5)

    worker = threading.Thread(target=slow_analysis)
    worker.start()
    try:
        assert started.wait(5)
        meanwhile = np.geterr()
    finally:
        release.set()
        worker.join(5)
    assert inside[0]["divide"] == "ignore"
    assert meanwhile == before
