"""Batch jobs: reading manifests into tasks (runner.py) and exporting results (export.py)."""
