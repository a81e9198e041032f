"""Kafka wiring of recprice: Faust app, topics, tables, agents and the CLI."""
