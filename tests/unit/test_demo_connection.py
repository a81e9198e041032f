"""`recprice demo` refuses a broker it cannot use, before it starts anything."""

import socket
import threading

import pytest

import streams.offline.demo as demo
from streams.offline.ports import free_port
from streams.settings import KafkaSettings, Settings


def _never(*_args, **_kwargs):
    raise AssertionError("the demo went on past a broker it cannot use")


@pytest.fixture
def nothing_starts(monkeypatch):
    monkeypatch.setattr(demo, "start_local_broker", _never)
    monkeypatch.setattr(demo, "spawn_worker", _never)
    monkeypatch.setattr(demo, "create_topics", _never)


def test_no_local_plaintext_broker_stands_in_for_a_secure_one(tmp_path, nothing_starts, capsys):
    kafka = KafkaSettings(
        bootstrap=f"127.0.0.1:{free_port()}",
        security_protocol="SASL_SSL",
        sasl_username="alice",
        sasl_password="s3cret-pw",
    )
    assert demo.run_demo(Settings(kafka=kafka), tmp_path / "out", 10) == 1
    printed = capsys.readouterr().out
    assert "cannot stand in for a SASL_SSL one" in printed
    assert "s3cret-pw" not in printed


def test_a_broker_that_refuses_the_connection_stops_the_demo(tmp_path, nothing_starts, capsys):
    # Accepts and closes at once: what a SASL listener does to a PLAINTEXT client.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def refuse() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=refuse, daemon=True).start()
    try:
        code = demo.run_demo(
            Settings(kafka=KafkaSettings(bootstrap=f"127.0.0.1:{port}")), tmp_path / "out", 10
        )
    finally:
        server.close()
    assert code == 1
    assert f"kafka: 127.0.0.1:{port} closed the connection" in capsys.readouterr().out
