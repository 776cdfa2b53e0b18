"""The one way Vigil talks to Prometheus: `PrometheusConfig` and `connect()`.

The operator's provider, the demo's report and the development server all use this
connection (prometheus-api-client on a requests session with timeouts, retries with backoff,
auth and TLS), so a fix to how Prometheus is reached lands everywhere at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry


@dataclass(frozen=True)
class PrometheusConfig:
    """How to reach Prometheus. `headers` are sent with every request (e.g. a tenant id)."""

    url: str
    timeout_seconds: float = 10.0
    retries: int = 3
    backoff_seconds: float = 0.5  # urllib3 backoff factor: 0.5, 1, 2 ... seconds between tries
    bearer_token: str | None = None
    bearer_token_file: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    verify_tls: bool = True
    ca_file: str | None = None
    query_budget_seconds: float = 25.0  # one collect() stops querying after this; the rest is NoData
    step_seconds: float = 60.0
    max_staleness_seconds: float = 180.0
    namespace_label: str = "namespace"

    def __post_init__(self) -> None:
        for name in ("timeout_seconds", "query_budget_seconds", "step_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PrometheusConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.retries < 0:
            raise ValueError(f"PrometheusConfig.retries must be >= 0, got {self.retries!r}")

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        token = self.bearer_token
        if self.bearer_token_file:
            token = Path(self.bearer_token_file).read_text().strip()  # re-read: tokens rotate
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers


class QueryClient(Protocol):
    """What Vigil needs of a Prometheus client (PrometheusConnect, or a fake in tests)."""

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str,
                           params: dict | None = None) -> list[dict[str, Any]]: ...

    def custom_query(self, query: str, params: dict | None = None) -> list[dict[str, Any]]: ...


def connect(config: PrometheusConfig) -> PrometheusConnect:
    """A prometheus-api-client connection with timeouts, retries with backoff, auth and TLS."""
    session = requests.Session()
    session.verify = config.ca_file if config.ca_file else config.verify_tls
    # a read timeout is not repeated: a slow server asked again is slower still, and one model's
    # hanging query must end within `timeout_seconds` (docs/reliability.md)
    retry = Retry(total=config.retries, connect=config.retries, read=0,
                  backoff_factor=config.backoff_seconds, status_forcelist=(429, 502, 503, 504),
                  allowed_methods=("GET", "POST"), raise_on_status=False)
    return PrometheusConnect(url=config.url.rstrip("/"), headers=config.request_headers(),
                             disable_ssl=not config.verify_tls, retry=retry, session=session,
                             timeout=config.timeout_seconds)


def request(client: PrometheusConnect, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A request to another endpoint of the same server (``/-/ready``, ``/-/reload``), on the
    connection's own session, headers and timeout, for what prometheus-api-client does not wrap."""
    session: requests.Session = client._session
    return session.request(method, f"{client.url}{path}", headers=client.headers,
                           timeout=kwargs.pop("timeout", client._timeout), **kwargs)
