"""The worker's flows: ingest, scoring and the pricing experiment."""
