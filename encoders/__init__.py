"""Text encoders, scoring head, item index, training and evaluation (no Kafka)."""
