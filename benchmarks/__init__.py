"""Benchmarks for judgeloop's data tools (run as modules: python -m benchmarks.audit_bench)."""
