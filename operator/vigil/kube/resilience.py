"""Timeouts, bounded retries and the leader fence for every Kubernetes call the operator makes.

`ResilientApiClient` is the `ApiClient` the operator builds (`handlers/config.py`). Every request
(typed API or dynamic client: both end in `call_api`) gets connect/read timeouts unless the caller
set its own, and answers that are worth repeating (429, 5xx, a dropped connection or a timeout)
are retried with jittered exponential backoff by tenacity, bounded in attempts and in time, so a
pass can never hang on the apiserver and never hammers it either. A 409 is not retried here: the
same request with the same resourceVersion would conflict again; the pass reads again instead
(see `PassBackoff` and `handlers/operator.py`).

With leader election on, writes are fenced: a replica that is not (or no longer surely) the
leader raises `NotLeader` before a write leaves the process. Reads are never fenced.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

log = logging.getLogger("vigil.kube")

RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NotLeader(ApiException):
    """A write was refused in this process because this replica does not hold the Lease."""

    def __init__(self, method: str, url: str) -> None:
        super().__init__(status=0, reason=f"not the leader: {method} {url.split('?')[0]} was not sent")


class RetryableStatus(Exception):
    """Internal: an HTTP answer worth repeating (429/5xx); carries the response for the last try."""

    def __init__(self, response: Any) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a single request tries. Defaults keep a request under ~`max_seconds` plus one
    read timeout, well inside the liveness probe's window."""

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    attempts: int = 4
    max_seconds: float = 20.0
    initial_backoff: float = 0.2
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "max_seconds", "initial_backoff", "max_backoff"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RetryPolicy.{name} must be > 0, got {getattr(self, name)!r}")
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts!r}")


def _retryable(err: BaseException) -> bool:
    if isinstance(err, RetryableStatus):
        return True
    if isinstance(err, NotLeader):
        return False
    if isinstance(err, ApiException):
        return err.status in RETRIED_STATUS
    return isinstance(err, urllib3.exceptions.HTTPError)  # timeouts, refused or dropped connections


def _is_watch(url: str) -> bool:
    query = url.partition("?")[2].lower()
    return "watch=true" in query or "watch=1" in query


class ResilientApiClient(k8s.ApiClient):
    """An ApiClient with default timeouts, bounded jittered retries and an optional write fence."""

    def __init__(self, configuration: k8s.Configuration | None = None, *, policy: RetryPolicy | None = None,
                 fence: Callable[[], bool] | None = None, sleep: Callable[[float], None] | None = None) -> None:
        super().__init__(configuration)
        self.policy = policy or RetryPolicy()
        self.fence = fence
        self._sleep = sleep
        self.retried = 0  # requests repeated so far (for tests and metrics)

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None, post_params: Any = None,
                 _request_timeout: Any = None) -> Any:
        method = method.upper()
        if self.fence is not None and method in WRITE_METHODS and not self.fence():
            raise NotLeader(method, url)
        if _request_timeout is None and not _is_watch(url):
            _request_timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        p = self.policy
        kwargs: dict[str, Any] = {}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(p.attempts) | stop_after_delay(p.max_seconds),
            wait=wait_exponential_jitter(multiplier=p.initial_backoff, max=p.max_backoff, jitter=p.initial_backoff),
            before_sleep=self._before_sleep, reraise=True, **kwargs,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = super().call_api(method, url, header_params, body, post_params,
                                                _request_timeout=_request_timeout)
                    if response.status in RETRIED_STATUS:
                        response.read()  # release the connection before the next try
                        raise RetryableStatus(response)
                    return response
        except RetryableStatus as final:
            return final.response  # the caller turns it into an ApiException with the server's message
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retried += 1
        err = state.outcome.exception() if state.outcome else None
        log.info("kubernetes request retried (attempt %d): %s", state.attempt_number, err)


def build(configuration: k8s.Configuration, policy: RetryPolicy | None = None,
          fence: Callable[[], bool] | None = None) -> ResilientApiClient:
    """The operator's client: urllib3's own retries off (tenacity owns them), pool sized for the workers."""
    configuration.retries = 0
    return ResilientApiClient(configuration, policy=policy, fence=fence)


@dataclass
class PassBackoff:
    """The delay before a ModelDeployment's next pass after consecutive failed passes: jittered,
    exponential, capped, and reset by a pass that succeeds. Computed by tenacity's own wait
    strategy; the daemon's wait is the only sleep."""

    initial: float = 1.0
    maximum: float = 60.0
    failures: dict[tuple[str, str], int] = field(default_factory=dict)

    def failed(self, namespace: str, name: str) -> float:
        n = self.failures.get((namespace, name), 0) + 1
        self.failures[(namespace, name)] = n
        wait = wait_exponential_jitter(multiplier=self.initial, max=self.maximum, jitter=0)
        state = RetryCallState(None, None, (), {})
        state.attempt_number = n
        return min(self.maximum, wait(state)) * random.uniform(0.5, 1.0)  # "equal jitter": never 0

    def succeeded(self, namespace: str, name: str) -> None:
        self.failures.pop((namespace, name), None)

    def count(self, namespace: str, name: str) -> int:
        return self.failures.get((namespace, name), 0)
