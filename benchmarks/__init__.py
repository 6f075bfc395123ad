"""Benchmarks for BENCHMARKS.md and BENCHMARKS_torch_pruning.md: measurement code, outside the installed package.

Run from the repository root: `make bench` (python -m benchmarks.run_bench) and python -m benchmarks.run_torch_pruning.
"""
