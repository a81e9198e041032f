"""The worker's HTTP endpoint: ``/metrics``, ``/livez`` and ``/readyz`` on one port.

The endpoint is served by a thread (wsgiref, one thread per request), not by
an HTTP server on the event loop: a loop that stops answering then gets a
prompt 503 on ``/livez`` rather than a hung connection, and ``/metrics`` stays
readable while the loop is stuck, which is when it is needed. The thread never
touches Faust itself: it asks the loop to run each probe
(``call_soon_threadsafe``) and waits at most ``PROBE_TIMEOUT_S``, and it reads
the metrics from their registry, which is thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import socketserver
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import faust
from faust.tables.manager import TableManager
from mode import Service
from prometheus_client import CollectorRegistry, make_wsgi_app

from streams.worker.catalog import Catalog

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
"""How long a probe waits for the event loop before it answers 503."""

T = TypeVar("T")

Probe = Callable[[], str | None]
"""Return None when healthy, else why not (the 503 body)."""


def readiness(
    *, recovered: bool, in_recovery: bool, catalog_loaded: bool, index_built: bool | None
) -> str | None:
    """Why the worker is not ready, or None once its tables and catalogue are.

    ``index_built`` is None in a worker without the scorer (it embeds nothing).
    """
    if in_recovery:
        return "table recovery in progress"
    if not recovered:
        return "table recovery not done yet"
    if not catalog_loaded:
        return "catalogue not loaded yet"
    if index_built is False:
        return "item index not built yet"
    return None


def worker_readiness(app: faust.App, catalog: Catalog) -> str | None:
    """:func:`readiness` of a running app: run it on the app's event loop."""
    recovery = cast(TableManager, app.tables).recovery
    return readiness(
        recovered=recovery.completed.is_set(),
        in_recovery=app.in_recovery,
        catalog_loaded=catalog.ready.is_set(),
        index_built=catalog.index_ready.is_set() if catalog.embeds else None,
    )


def ask_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], T], timeout_s: float) -> T:
    """Run ``fn`` on ``loop`` from another thread; raise TimeoutError if it does not answer."""
    answer: Future[T] = Future()

    def run() -> None:
        try:
            answer.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            answer.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return answer.result(timeout_s)


def loop_probe(
    loop: asyncio.AbstractEventLoop, check: Probe, timeout_s: float = PROBE_TIMEOUT_S
) -> Probe:
    """Return a probe that runs ``check`` on ``loop``; a loop that does not answer fails it."""

    def probe() -> str | None:
        try:
            return ask_loop(loop, check, timeout_s)
        except TimeoutError:
            return f"event loop did not answer within {timeout_s} s"
        except RuntimeError as exc:  # the loop is closed
            return f"event loop not running: {exc}"

    return probe


def endpoint_app(registry: CollectorRegistry, live: Probe, ready: Probe) -> WSGIApplication:
    """Serve Prometheus text on ``/metrics``, 200 or 503 on ``/livez`` and ``/readyz``."""
    metrics = make_wsgi_app(registry)
    probes = {"/livez": live, "/readyz": ready}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        probe = probes.get(path)
        if probe is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /metrics, /livez, /readyz\n"]
        why = probe()
        status = "200 OK" if why is None else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{why or 'ok'}\n".encode()]

    return app


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's name
        """Log nothing: probes come every few seconds."""


class Endpoint:
    """The WSGI app served on ``host:port`` by a daemon thread (port 0: any free port)."""

    def __init__(self, host: str, port: int, app: WSGIApplication) -> None:
        self._server = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-endpoint", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class HealthService(Service):
    """Serves the endpoint while the app runs; a dependency the app starts before its consumer."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, ready: Probe, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._host, self._port, self._registry, self._ready = host, port, registry, ready
        self._endpoint: Endpoint | None = None

    async def on_start(self) -> None:
        """Serve the endpoint; its probes ask this (the app's) event loop."""
        loop = asyncio.get_running_loop()
        app = endpoint_app(
            self._registry, loop_probe(loop, lambda: None), loop_probe(loop, self._ready)
        )
        self._endpoint = Endpoint(self._host, self._port, app)
        log.info("metrics: http://%s:%d/metrics", self._host, self._endpoint.port)

    async def on_stop(self) -> None:
        """Stop serving; the serving thread takes up to its poll interval to notice."""
        if self._endpoint is not None:
            await asyncio.to_thread(self._endpoint.close)
            self._endpoint = None
