"""Observability: Prometheus metrics, structured logs with request ids, optional tracing, health."""
