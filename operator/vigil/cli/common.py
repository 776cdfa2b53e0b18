"""Helpers shared by the `vigil` subcommands."""

from __future__ import annotations

import os
from typing import Any


def api_client(kubeconfig: str | None) -> Any:
    """An API client from --kubeconfig, else $KUBECONFIG, else ~/.kube/config."""
    from kubernetes import config as k8s_config

    return k8s_config.new_client_from_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"))
