"""Observability, each part off until enabled: Prometheus metrics, OpenTelemetry tracing, debug
logging of every publish and delivery, and a logging filter that adds the event's ids."""
