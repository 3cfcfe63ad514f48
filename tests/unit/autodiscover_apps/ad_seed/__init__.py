"""An app laid out as the in-house event backend's projects are: an ``event_handlers`` module."""
