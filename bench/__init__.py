"""Throughput and latency harness: eventhub end to end against raw Dramatiq.

Run it with ``make bench`` or ``python -m bench --help``; see docs/benchmark.md.
"""
