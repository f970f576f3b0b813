"""Benchmarks of django-bgjobs: ``python bench/run.py`` (see README.md)."""
