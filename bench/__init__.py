"""Benchmarks: each script prints a table and writes JSON under bench/results/ (see docs/benchmarks.md)."""
