"""Safe PromQL selectors: every label value is validated, then escaped.

Names come from Kubernetes objects a user controls, so a crafted name must never change
the query: `v2"} or vector(1) or up{x="` has to stay a literal that matches nothing.
Validation rejects anything that is not a Kubernetes label value (a clear error beats a
query that silently matches nothing), and escaping makes even a value that slipped past
validation a plain string literal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
KUBE_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
RESERVED = frozenset({"__name__", "version", "model"})


class InvalidLabel(ValueError):
    """A name that cannot be used in a query; the message names the field and the rule."""


def escape(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly `value`."""
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    return out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def check_value(field: str, value: str) -> str:
    """`value` if it is a valid Kubernetes label value (1-63 of [A-Za-z0-9-_.], alphanumeric ends)."""
    if not isinstance(value, str) or not KUBE_LABEL_VALUE.fullmatch(value):
        raise InvalidLabel(
            f"{field} {value!r} is not a valid label value: use 1-63 characters from "
            f"[A-Za-z0-9-_.], starting and ending with a letter or digit"
        )
    return value


def check_name(name: str) -> str:
    if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
        raise InvalidLabel(f"label name {name!r} is not valid: use [a-zA-Z_][a-zA-Z0-9_]*")
    return name


def selector(metric: str, matchers: Mapping[str, str]) -> str:
    """`metric{a="x",b="y"}` with names checked and values escaped."""
    if not LABEL_NAME.fullmatch(metric.replace(":", "_")):
        raise InvalidLabel(f"metric name {metric!r} is not valid")
    body = ",".join(f'{check_name(k)}="{escape(v)}"' for k, v in matchers.items())
    return f"{metric}{{{body}}}"
