"""Bounded personalized pricing: policy, guardrails and A/B experiments (no Kafka)."""
