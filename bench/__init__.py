"""Benchmark of Vigil's analysis against the canary judges in common use."""
