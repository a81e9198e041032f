"""What the flows need from Faust beyond its API: batches, event context, delivery, recovery."""
