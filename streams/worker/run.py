"""Running one Faust worker in this process."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import socket
from typing import Any

import faust
import uvloop

from streams.connection import ConnectionProblem, check_connection
from streams.settings import EventLoop, Settings
from streams.topics import create_topics
from streams.worker.app import create_app
from streams.worker.catalog import ITEM_VECTORS_FILE
from streams.worker.log_format import json_logging_config, route_to_root, worker_id
from streams.worker.runtime import Runtime

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Create topics, load the model, and run the worker until SIGINT/SIGTERM."""
    log_level = settings.worker.log_level
    config: dict[str, Any] | None = None
    if settings.worker.log_format == "json":
        config = use_json_logs(settings)
        exit_unless_reachable(settings)
        try:
            app = build_app(settings)
        except Exception:  # one JSON line with the traceback, not the CLI's text one
            log.critical("the worker could not start", exc_info=True)
            raise SystemExit(1) from None
    else:
        logging.basicConfig(level=log_level.upper())
        exit_unless_reachable(settings)
        app = build_app(settings)
    quiet_worker(app, log_level, logging_config=config).execute_from_commandline()


def exit_unless_reachable(settings: Settings) -> None:
    """Exit with status 1 and `check_connection`'s one line when the broker refuses us.

    Before anything is created or consumed: the clients would retry for a long
    time. The line is a CRITICAL record in JSON, the bare line in text.
    """
    try:
        check_connection(settings.kafka)
    except ConnectionProblem as exc:
        if settings.worker.log_format == "json":
            log.critical("%s", exc)
            raise SystemExit(1) from None
        raise SystemExit(str(exc)) from None


def use_json_logs(settings: Settings) -> dict[str, Any]:
    """Write this process's log records as JSON lines from now on; return the config for mode.

    The worker id is the app id (consumer group) with host and process id.
    """
    worker = worker_id(settings.app_id, socket.gethostname(), os.getpid())
    logging.config.dictConfig(json_logging_config(settings.worker.log_level, worker))
    logging.captureWarnings(True)  # warnings as records too, not text on stderr
    if settings.scorer.enabled:
        # torch and transformers add stderr handlers of their own on import: import
        # them now, so that route_to_root takes those over before the model loads.
        import encoders.model  # noqa: F401
    route_to_root()
    return json_logging_config(settings.worker.log_level, worker)


def build_app(settings: Settings) -> faust.App:
    """Create the topics, load the model and build the app."""
    use_event_loop(settings.worker.event_loop)
    create_topics(settings)
    runtime = Runtime.create(
        settings.encoder,
        scorer=settings.scorer.enabled,
        vectors=settings.worker.data_dir / ITEM_VECTORS_FILE,
    )
    return create_app(settings, runtime)


def quiet_worker(
    app: faust.App,
    log_level: str,
    redirect_stdouts: bool = True,
    logging_config: dict[str, Any] | None = None,
) -> faust.Worker:
    """Return a Faust worker without its terminal spinner.

    The spinner sets the root logger to DEBUG, so every debug call in faust and
    aiokafka would build a log record nobody reads (bench/RESULTS.md, "No DEBUG
    logging by accident"). ``logging_config`` replaces mode's coloured handler
    (`log_format.json_logging_config`); None keeps it.
    """
    worker = faust.Worker(
        app,
        loglevel=log_level,
        quiet=True,
        redirect_stdouts=redirect_stdouts,
        logging_config=logging_config,
    )
    worker.spinner = None
    return worker


def use_event_loop(name: EventLoop) -> None:
    """Install the event loop policy; call before the app exists, which creates its loop lazily.

    Faust's per-message plumbing (queues, futures, callbacks) runs on the loop,
    so uvloop's C implementation lifts the whole worker, not just its sockets.
    """
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy() if name == "uvloop" else None)
