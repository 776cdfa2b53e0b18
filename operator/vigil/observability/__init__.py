"""The operator's own telemetry: Prometheus metrics (`metrics`) and structured logs (`logs`)."""
