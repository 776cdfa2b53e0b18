"""Vigil: a Kubernetes operator that makes every new model version earn its traffic."""

__version__ = "0.1.0"
