"""Running one Faust worker in this process."""

from __future__ import annotations

import logging

import faust

from streams.app import create_app
from streams.runtime import Runtime
from streams.settings import Settings
from streams.topics import create_topics


def run_worker(settings: Settings) -> None:
    """Create topics, load the model, and run the worker until SIGINT/SIGTERM."""
    logging.basicConfig(level=settings.worker.log_level.upper())
    create_topics(settings)
    runtime = Runtime.create(settings.encoder)
    app = create_app(settings, runtime)
    worker = faust.Worker(app, loglevel=settings.worker.log_level, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG, so every debug
    # call in faust and aiokafka builds a log record: 5% of ingest CPU.
    worker.spinner = None
    worker.execute_from_commandline()
