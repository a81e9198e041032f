"""Running one Faust worker in this process."""

from __future__ import annotations

import asyncio
import logging

import faust
import uvloop

from streams.settings import EventLoop, Settings
from streams.topics import create_topics
from streams.worker.app import create_app
from streams.worker.catalog import ITEM_VECTORS_FILE
from streams.worker.runtime import Runtime


def run_worker(settings: Settings) -> None:
    """Create topics, load the model, and run the worker until SIGINT/SIGTERM."""
    logging.basicConfig(level=settings.worker.log_level.upper())
    use_event_loop(settings.worker.event_loop)
    create_topics(settings)
    runtime = Runtime.create(
        settings.encoder,
        scorer=settings.scorer.enabled,
        vectors=settings.worker.data_dir / ITEM_VECTORS_FILE,
    )
    app = create_app(settings, runtime)
    quiet_worker(app, settings.worker.log_level).execute_from_commandline()


def quiet_worker(app: faust.App, log_level: str, redirect_stdouts: bool = True) -> faust.Worker:
    """Return a Faust worker without its terminal spinner.

    The spinner sets the root logger to DEBUG, so every debug call in faust and
    aiokafka would build a log record nobody reads (bench/RESULTS.md, "No DEBUG
    logging by accident").
    """
    worker = faust.Worker(app, loglevel=log_level, quiet=True, redirect_stdouts=redirect_stdouts)
    worker.spinner = None
    return worker


def use_event_loop(name: EventLoop) -> None:
    """Install the event loop policy; call before the app exists, which creates its loop lazily.

    Faust's per-message plumbing (queues, futures, callbacks) runs on the loop,
    so uvloop's C implementation lifts the whole worker, not just its sockets.
    """
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy() if name == "uvloop" else None)
