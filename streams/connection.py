"""Kafka client options from `KafkaSettings`, and a bounded check that the broker lets us in.

Every client (the Faust worker's consumers and producer, the worker's own
aiokafka consumers, the CLI's and the benchmarks' kafka-python clients) takes
its connection options from here, so a PLAINTEXT, SSL or SASL setting means
the same thing everywhere (docs/architecture.md, "Secure connections").
kafka-python and aiokafka retry a refused connection for a long time and only
log why; `check_connection` tries once, within a bounded time, and says why in
one line, so a process can exit before it consumes anything.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import SecretStr

from streams.settings import KafkaSettings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

# A TLS record starts with its content type (0x15 alert, 0x16 handshake) and
# major version 3; read as a Kafka size prefix, those bytes say that the broker
# answered a plaintext request in TLS.
_TLS_RECORD_TYPES = (0x15, 0x16)
_TLS_MAJOR = 3


class ConnectionProblem(Exception):
    """The broker cannot be used with these settings; the message says why, in one line."""


def uses_tls(kafka: KafkaSettings) -> bool:
    """Whether connections are wrapped in TLS (SSL, SASL_SSL)."""
    return kafka.security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(kafka: KafkaSettings) -> bool:
    """Whether connections authenticate with SASL (SASL_PLAINTEXT, SASL_SSL)."""
    return kafka.security_protocol.startswith("SASL_")


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """Return the TLS context of SSL and SASL_SSL, which verifies brokers against ``ssl_cafile``.

    Without ``ssl_cafile`` the system's CAs are trusted (a managed Kafka with a
    public certificate); the client certificate is sent when one is set.
    Host names are checked, so a broker's certificate must name its address.
    """
    if not uses_tls(kafka):
        return None
    cafile = str(kafka.ssl_cafile) if kafka.ssl_cafile is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if kafka.ssl_certfile is not None:
        keyfile = str(kafka.ssl_keyfile) if kafka.ssl_keyfile is not None else None
        context.load_cert_chain(str(kafka.ssl_certfile), keyfile)
    return context


def security_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Security keyword arguments of a kafka-python or aiokafka client (both use these names).

    PLAINTEXT gives only ``security_protocol``, so those clients behave as
    they did without the setting.
    """
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if uses_sasl(kafka):
        options |= {
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.password(),
        }
    return options


def kafka_python_options(kafka: KafkaSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security options of a kafka-python client."""
    return {"bootstrap_servers": kafka.bootstrap, **security_options(kafka)}


def aiokafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security options of an aiokafka client."""
    return {"bootstrap_servers": kafka.bootstrap, **security_options(kafka)}


def faust_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """Return the Faust app's ``broker_credentials`` (None for PLAINTEXT).

    Faust hands them to every aiokafka client it makes (consumer, producer,
    the admin calls that create its topics).
    """
    # Imported here: only the worker needs faust, and it is slow to import.
    from faust.auth import SASLCredentials, SSLCredentials

    context = ssl_context(kafka)
    if uses_sasl(kafka):
        return SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.password(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def bootstrap_hosts(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as (host, port) pairs (port 9092 when left out)."""
    hosts = []
    for entry in bootstrap.split(","):
        host, _, port = entry.strip().rpartition(":")
        hosts.append((host.strip("[]"), int(port)) if host else (port, 9092))
    return hosts


def check_connection(kafka: KafkaSettings, timeout_s: float = 10.0) -> None:
    """Connect to the bootstrap brokers once and ask for metadata; raise `ConnectionProblem`.

    Passes as soon as one broker answers. Uses the same options as every
    client, so a wrong password, an unknown CA or a protocol that does not
    match the listener is found within ``timeout_s``, before anything runs.
    """
    for setting in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file"):
        path = getattr(kafka, setting)
        if path is not None and not path.is_file():
            raise ConnectionProblem(f"kafka: {setting} {path} is not a file")
    try:
        options = security_options(kafka)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionProblem(f"kafka: cannot load the connection settings: {exc}") from None
    first_problem = None
    for host, port in bootstrap_hosts(kafka.bootstrap):
        problem = asyncio.run(_probe(kafka, host, port, options, timeout_s))
        if problem is None:
            return
        first_problem = first_problem or problem
    if first_problem is not None:
        raise ConnectionProblem(first_problem)


async def _probe(
    kafka: KafkaSettings, host: str, port: int, options: dict[str, Any], timeout_s: float
) -> str | None:
    """Why ``host:port`` cannot be used, or None when it answered a metadata request."""
    conn = None
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **options),
            timeout_s,
        )
        await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
    except (TimeoutError, OSError, KafkaError) as exc:
        return explain(exc, kafka, host, port, timeout_s)
    finally:
        if conn is not None:
            conn.close()
    return None


def explain(
    exc: BaseException, kafka: KafkaSettings, host: str, port: int, timeout_s: float
) -> str:
    """One line naming why a connection attempt failed, never the password."""
    at = f"{host}:{port}"
    protocol = kafka.security_protocol
    name = type(exc).__name__
    if name == "SaslAuthenticationFailed":
        return (
            f"kafka: SASL authentication failed for user '{kafka.sasl_username}' at {at} "
            f"with {kafka.sasl_mechanism} (check the password)"
        )
    if name == "UnsupportedSaslMechanismError":
        return f"kafka: {at} does not accept SASL mechanism {kafka.sasl_mechanism}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"kafka: TLS certificate verify failed at {at}: {exc.verify_message} "
            f"(check ssl_cafile: {kafka.ssl_cafile or 'the system CAs'})"
        )
    if isinstance(exc, ssl.SSLError):
        return f"kafka: TLS handshake with {at} failed: {exc.reason or exc} (is it a TLS listener?)"
    if isinstance(exc, KafkaConnectionError) and "closed" in str(exc):
        return f"kafka: {at} closed the connection {_closed_why(exc, kafka)}"
    if isinstance(exc, TimeoutError):
        return (
            f"kafka: no answer from {at} within {timeout_s:g} s with security_protocol "
            f"{protocol} (does the listener use it?)"
        )
    if isinstance(exc, ConnectionResetError) and uses_tls(kafka):
        return f"kafka: {at} reset the connection during the TLS handshake (is it a TLS listener?)"
    if isinstance(exc, ConnectionRefusedError):
        return f"kafka: connection refused at {at} (is the broker running?)"
    detail = " ".join(str(exc).split()) or name
    return f"kafka: cannot connect to {at} with security_protocol {protocol}: {detail}"


def _closed_why(exc: BaseException, kafka: KafkaSettings) -> str:
    """Say what a broker closing the connection before any answer most likely means."""
    protocol = kafka.security_protocol
    if isinstance(exc.__cause__, ssl.SSLError):
        # An alert after the handshake: the broker checked our certificate (TLS 1.3).
        alert = exc.__cause__.reason or exc.__cause__
        return (
            f"after the TLS alert {alert}: the broker refused the client certificate "
            f"(ssl_certfile: {kafka.ssl_certfile or 'not set'})"
        )
    size = getattr(exc.__cause__, "expected", None)
    if not uses_tls(kafka) and isinstance(size, int) and _looks_like_tls(size):
        return (
            f"after answering in TLS: it is an SSL or SASL_SSL listener, but security_protocol "
            f"is {protocol}"
        )
    if not uses_sasl(kafka):
        return (
            f"before answering any request: it may want SASL, but security_protocol is {protocol}"
        )
    return f"before answering any request (does its listener use {protocol}?)"


def _looks_like_tls(size: int) -> bool:
    """Whether a Kafka size prefix is really the start of a TLS record."""
    return size >> 24 in _TLS_RECORD_TYPES and (size >> 16) & 0xFF == _TLS_MAJOR


SECURITY_FIELDS = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "sasl_password_file",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
)


def security_settings(kafka: KafkaSettings) -> dict[str, str]:
    """Return the connection settings of ``kafka`` that are set, as text.

    For another `Settings` on the same broker or a child process's
    ``RECPRICE__KAFKA__*`` environment, so the options travel with the bootstrap.
    """
    out = {}
    for name in SECURITY_FIELDS:
        value = getattr(kafka, name)
        if value is not None:
            out[name] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return out
