"""Benchmarks of rcu-quiescent: run each module as a script or with ``python -m``."""
