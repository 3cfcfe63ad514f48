"""An app whose ``handlers`` module registers a receiver, then fails on a missing dependency."""
