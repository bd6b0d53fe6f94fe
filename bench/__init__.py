"""Flare's benchmarks: ``python -m bench --help`` lists the sections."""
