"""Transports: brokers that carry integration events between services."""
