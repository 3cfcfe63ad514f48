"""Integration events between services: CloudEvents messages, routes to broker destinations."""
