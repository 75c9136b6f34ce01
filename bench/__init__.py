"""Reproducible benchmarks that print ratios measured side by side; `python -m bench.run_all`."""
