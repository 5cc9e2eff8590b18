"""Benchmarks of indiebridge against Pelican and Hugo: ``python -m benchmarks``."""
