"""Reproducible benchmarks: each measures a figure and its baseline in the same run. See README.md."""
