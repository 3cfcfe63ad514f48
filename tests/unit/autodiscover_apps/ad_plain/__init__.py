"""An app with neither a ``handlers`` nor a ``receivers`` module: autodiscovery skips it."""
