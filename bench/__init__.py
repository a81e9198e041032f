"""Benchmarks of recprice (``recprice bench``): ratios measured in one run, never asserted."""
