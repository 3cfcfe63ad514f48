"""Throwaway apps installed by the autodiscovery tests (never in the test project's settings)."""
