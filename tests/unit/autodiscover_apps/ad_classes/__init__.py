"""An app whose ``handlers`` module declares a class-based receiver."""
