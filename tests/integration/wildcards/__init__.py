"""Wildcard and once receivers run by a real Celery worker."""
