"""The demo's real moving parts: model servers, a traffic splitter, a load generator,
a report, and a helper that runs them as local processes.

Nothing here is imported by the operator itself: the operator only sees the apiserver
objects (Deployments, Services, HTTPRoute/VirtualService) and Prometheus series that
these processes make real.
"""
