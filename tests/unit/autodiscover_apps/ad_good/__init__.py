"""An app with both receiver modules autodiscovery imports: ``handlers`` and ``receivers``."""
