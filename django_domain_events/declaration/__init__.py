"""Declaring what happens: event classes, receivers and their registry, the envelope, the
payload codec and retry policies. Nothing here touches the database."""
