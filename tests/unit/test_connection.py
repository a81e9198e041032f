"""Client options from the Kafka settings, and the one-line reasons of a refused connection."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol, SASLMechanism

from streams.connection import (
    ConnectionProblem,
    aiokafka_options,
    bootstrap_hosts,
    check_connection,
    explain,
    faust_credentials,
    kafka_python_options,
    security_settings,
)
from streams.settings import KafkaSettings
from tests.secure_broker import make_ca

SECRET = "s3cret-Pa55"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ca(tmp_path_factory.mktemp("ca"), "ca")


def sasl_ssl(ca: Path, **changes: object) -> KafkaSettings:
    fields: dict[str, object] = {
        "bootstrap": "127.0.0.1:19393",
        "security_protocol": "SASL_SSL",
        "sasl_username": "alice",
        "sasl_password": SECRET,
        "ssl_cafile": ca,
    }
    return KafkaSettings(**(fields | changes))


def test_plaintext_keeps_the_clients_as_they_were():
    kafka = KafkaSettings(bootstrap="127.0.0.1:19092")
    expected = {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert kafka_python_options(kafka) == expected
    assert aiokafka_options(kafka) == expected
    assert faust_credentials(kafka) is None
    assert security_settings(kafka) == {
        "security_protocol": "PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
    }


def test_sasl_ssl_verifies_the_broker_and_authenticates(ca: Path):
    for options in (kafka_python_options(sasl_ssl(ca)), aiokafka_options(sasl_ssl(ca))):
        context = options.pop("ssl_context")
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert [c["subject"] for c in context.get_ca_certs()] == [
            ((("commonName", "recprice ca"),),)
        ]
        assert options == {
            "bootstrap_servers": "127.0.0.1:19393",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "alice",
            "sasl_plain_password": SECRET,
        }


def test_the_password_file_is_read_without_its_newline(ca: Path, tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    kafka = sasl_ssl(ca, sasl_password=None, sasl_password_file=secret)
    assert kafka_python_options(kafka)["sasl_plain_password"] == SECRET
    assert security_settings(kafka)["sasl_password_file"] == str(secret)


def test_faust_gets_sasl_over_tls_or_plaintext_and_tls_alone(ca: Path):
    credentials = faust_credentials(sasl_ssl(ca, sasl_mechanism="SCRAM-SHA-256"))
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_256
    assert (credentials.username, credentials.password) == ("alice", SECRET)

    plain = faust_credentials(sasl_ssl(ca, security_protocol="SASL_PLAINTEXT", ssl_cafile=None))
    assert isinstance(plain, SASLCredentials)
    assert plain.protocol is AuthProtocol.SASL_PLAINTEXT and plain.ssl_context is None

    tls = faust_credentials(
        KafkaSettings(bootstrap="b:9093", security_protocol="SSL", ssl_cafile=ca)
    )
    assert isinstance(tls, SSLCredentials) and tls.protocol is AuthProtocol.SSL


def test_the_password_is_in_no_repr(ca: Path):
    kafka = sasl_ssl(ca)
    shown = [repr(kafka), str(kafka), repr(faust_credentials(kafka)), kafka.model_dump_json()]
    assert all(SECRET not in text for text in shown)


def test_bootstrap_lists_are_split_into_hosts():
    assert bootstrap_hosts("127.0.0.1:19192, 127.0.0.1:19202,[::1]:9093,kafka") == [
        ("127.0.0.1", 19192),
        ("127.0.0.1", 19202),
        ("::1", 9093),
        ("kafka", 9092),
    ]


def test_each_refusal_is_named_in_one_line_without_the_password(ca: Path):
    kafka = sasl_ssl(ca)
    at = ("127.0.0.1", 19393, 10.0)
    tls_alert = asyncio.IncompleteReadError(b"\x02\x02P", 0x15030300)
    closed = KafkaConnectionError("Connection at 127.0.0.1:19393 closed")
    closed.__cause__ = tls_alert
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate in certificate chain"
    lines = {
        "auth": explain(SaslAuthenticationFailed("invalid credentials"), kafka, *at),
        "ca": explain(verify, kafka, *at),
        "plain": explain(closed, KafkaSettings(bootstrap="127.0.0.1:19393"), *at),
        "timeout": explain(TimeoutError(), kafka, *at),
        "refused": explain(ConnectionRefusedError(111, "refused"), kafka, *at),
    }
    assert lines == {
        "auth": "kafka: SASL authentication failed for user 'alice' at 127.0.0.1:19393 with "
        "SCRAM-SHA-512 (check the password)",
        "ca": "kafka: TLS certificate verify failed at 127.0.0.1:19393: self-signed certificate "
        f"in certificate chain (check ssl_cafile: {ca})",
        "plain": "kafka: 127.0.0.1:19393 closed the connection after answering in TLS: it is an "
        "SSL or SASL_SSL listener, but security_protocol is PLAINTEXT",
        "timeout": "kafka: no answer from 127.0.0.1:19393 within 10 s with security_protocol "
        "SASL_SSL (does the listener use it?)",
        "refused": "kafka: connection refused at 127.0.0.1:19393 (is the broker running?)",
    }
    assert all("\n" not in line and SECRET not in line for line in lines.values())


def test_a_closed_connection_that_is_not_tls_suggests_sasl():
    closed = KafkaConnectionError("Connection at h:1 closed")
    closed.__cause__ = asyncio.IncompleteReadError(b"", 4)
    line = explain(closed, KafkaSettings(bootstrap="h:1"), "h", 1, 10.0)
    assert line == (
        "kafka: h:1 closed the connection before answering any request: it may want SASL, "
        "but security_protocol is PLAINTEXT"
    )


def test_a_tls_alert_after_the_handshake_names_the_client_certificate(ca: Path):
    closed = KafkaConnectionError("Connection at h:1 closed")
    alert = ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate")
    alert.reason = "SSLV3_ALERT_BAD_CERTIFICATE"
    closed.__cause__ = alert
    kafka = KafkaSettings(bootstrap="h:1", security_protocol="SSL", ssl_cafile=ca)
    assert explain(closed, kafka, "h", 1, 10.0) == (
        "kafka: h:1 closed the connection after the TLS alert SSLV3_ALERT_BAD_CERTIFICATE: the "
        "broker refused the client certificate (ssl_certfile: not set)"
    )


def test_a_missing_file_is_named_before_any_connection(ca: Path, tmp_path: Path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConnectionProblem, match=f"^kafka: ssl_cafile {missing} is not a file$"):
        check_connection(sasl_ssl(ca, ssl_cafile=missing))
    with pytest.raises(ConnectionProblem, match="sasl_password_file .* is not a file$"):
        check_connection(sasl_ssl(ca, sasl_password=None, sasl_password_file=missing))


def test_when_every_bootstrap_broker_refuses_the_first_refusal_is_named():
    with pytest.raises(ConnectionProblem, match=r"^kafka: connection refused at 127\.0\.0\.1:1 "):
        check_connection(KafkaSettings(bootstrap="127.0.0.1:1,127.0.0.1:2"), timeout_s=2)


def test_nothing_listening_is_refused_at_once():
    with pytest.raises(ConnectionProblem, match=r"^kafka: connection refused at 127\.0\.0\.1:1 "):
        check_connection(KafkaSettings(bootstrap="127.0.0.1:1"), timeout_s=2)
