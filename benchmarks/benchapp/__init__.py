"""The benchmark project's app: the raw comparable model, the event class, no-op receivers."""
