"""Adapters to the Kubernetes API: the only package that calls it."""
