"""The event catalogue: every event type with its fields and receivers, as plain data, with its
JSON Schema and AsyncAPI renderings and the comparison that finds breaking changes."""
