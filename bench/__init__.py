"""Benchmarks: each measures this project's code and its baseline side by side, in the
same run, and reports the ratio. Run with ``python -m bench [NAME ...]``."""
