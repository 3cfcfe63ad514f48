"""Integration events between services: messages on a broker, and the inbox that consumes them."""
