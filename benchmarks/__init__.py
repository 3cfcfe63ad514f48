"""Benchmarks of django_domain_events against raw ORM floors; run ``python benchmarks/run.py``."""
