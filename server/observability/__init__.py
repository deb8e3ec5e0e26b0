"""Operations: Prometheus metrics, readiness checks and optional OpenTelemetry tracing."""
