"""One-off studies behind figures in bench/RESULTS.md: run from the repository root, not installed.

Each runs as ``python -m bench.studies.<name>``; none is part of ``recprice bench``.
"""
