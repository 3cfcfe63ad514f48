"""A small project for measuring the Celery dispatcher with a real worker:
``python benchmarks/celery_db_reuse.py``."""
