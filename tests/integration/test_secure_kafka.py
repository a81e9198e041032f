"""SASL_SSL on a real broker: the pipeline with the right credentials, clear refusals otherwise.

The broker (`tests.secure_broker`) has a certificate signed by a CA made for
this run and a SCRAM-SHA-512 user written by Kafka's own StorageTool; the
pipeline and the refusals use its SASL_SSL listener, and each client library
is also checked on its SASL_PLAINTEXT listener and its SSL one (client
certificates required). The CLI commands and the worker run in their own
processes, configured by ``RECPRICE__KAFKA__*`` as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka.errors import CoordinatorNotAvailableError

from streams.connection import ConnectionProblem, check_connection
from streams.offline.collect import TopicCollector, latest_recommendations
from streams.offline.deployment import Deployment, unique_prefix
from streams.offline.local import ROOT
from streams.settings import KafkaSettings
from streams.worker.wiring import whole_topic_consumer
from tests.integration.data import catalog, events, expected_states
from tests.kafka_support import Pipeline
from tests.secure_broker import SecureBroker

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

# A refused connection is reported within this; the clients alone would retry far longer.
FAIL_FAST_S = 5.0
# The worker's process start-up (imports) comes on top of the check itself.
PROCESS_S = 60.0


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    broker = SecureBroker(tmp_path_factory.mktemp("secure-broker"))
    broker.start()
    yield broker
    broker.stop()


def sasl_ssl(broker: SecureBroker, **changes: str) -> dict[str, str]:
    """Kafka settings of a SASL_SSL client of ``broker`` (the password from a file)."""
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": broker.user,
        "sasl_password_file": str(broker.password_file()),
        "ssl_cafile": str(broker.ca),
        **changes,
    }


def env_of(pipe: Pipeline, kafka: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``recprice`` process on ``pipe``'s topics, ``kafka`` overriding."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECPRICE__")}
    env |= pipe.kafka_env() | {"RECPRICE__TOPICS__PREFIX": pipe.prefix, "HF_HUB_OFFLINE": "1"}
    if kafka is not None:
        env = {k: v for k, v in env.items() if not k.startswith("RECPRICE__KAFKA__")}
        env |= {"RECPRICE__KAFKA__BOOTSTRAP": pipe.bootstrap}
        env |= {f"RECPRICE__KAFKA__{k.upper()}": v for k, v in kafka.items()}
    return env


def recprice(
    env: dict[str, str], *args: str, timeout_s: float = 240
) -> subprocess.CompletedProcess:
    """Run the command line in its own process, as an operator would (no stdin)."""
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        timeout=timeout_s,
    )


def consumed(pipe: Pipeline, timeout_s: float = 30.0) -> int:
    """The app group's committed events, once the broker's group coordinator is up.

    A fresh broker creates its offsets topic on the first group request, and
    says "coordinator not available" until then.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return pipe.consumed(pipe.topics.events)
        except CoordinatorNotAvailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def jsonl(path: Path, objs: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objs))
    return path


@pytest.fixture
def secure_pipe(
    secure_broker: SecureBroker, tiny_model_dir: Path, tmp_path: Path
) -> Iterator[Pipeline]:
    pipe = Pipeline(
        secure_broker.bootstrap, tiny_model_dir, tmp_path, kafka=sasl_ssl(secure_broker)
    )
    yield pipe
    pipe.close()


def test_the_pipeline_runs_over_sasl_ssl_with_the_right_credentials(
    secure_broker: SecureBroker, secure_pipe: Pipeline, tmp_path: Path
):
    env = env_of(secure_pipe)
    created = recprice(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert secure_pipe.topics.events.name in created.stdout
    items, good = catalog(), events(users=6, per_user=4)
    for topic, objs in (("items", items), ("events", good)):
        sent = recprice(
            env, "produce", "--topic", topic, "--file", str(jsonl(tmp_path / topic, objs))
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith(f"sent {len(objs)}, failed 0, skipped 0"), sent.stdout
    secure_pipe.start_worker()

    expected = expected_states(good, items)
    names = [secure_pipe.topics.recommendations.name, secure_pipe.topics.price_updates.name]
    collector = TopicCollector(secure_pipe.settings.kafka, names)

    def done() -> bool:
        latest = latest_recommendations(collector.records[names[0]])
        priced = Counter(p["user_id"] for p in collector.records[names[1]])
        return all(
            u in latest and latest[u]["state_version"] >= s.version and priced[u] > 0
            for u, s in expected.items()
        )

    ok = collector.until(done, 240)
    collector.close()
    assert ok, f"no recommendations over SASL_SSL; worker log:\n{secure_pipe.log()}"
    assert secure_pipe.wait_consumed(secure_pipe.topics.events, 60)

    tail = recprice(
        env, "tail", "recommendations", "--from-beginning", "--max", "1", "--idle", "20"
    )
    assert tail.returncode == 0, tail.stderr
    assert orjson.loads(tail.stdout.splitlines()[0])["user_id"] in expected
    logs = secure_pipe.log(tail_chars=10**7) + created.stderr + tail.stderr
    assert secure_broker.password not in logs


def other_protocol(broker: SecureBroker, protocol: str) -> dict[str, str]:
    """Settings of a client of ``broker``'s listener for ``protocol``, with its credentials."""
    cert, key = broker.client_cert
    return {
        "SASL_SSL": {"bootstrap": broker.bootstrap, **sasl_ssl(broker)},
        "SASL_PLAINTEXT": {
            "bootstrap": broker.at(3),
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_username": broker.user,
            "sasl_password_file": str(broker.password_file()),
        },
        "SSL": {
            "bootstrap": broker.at(4),
            "security_protocol": "SSL",
            "ssl_cafile": str(broker.ca),
            "ssl_certfile": str(cert),
            "ssl_keyfile": str(key),
        },
    }[protocol]


async def first_record(kafka: KafkaSettings, topic: str) -> bytes | None:
    """The first record of ``topic`` read by the worker's own aiokafka consumer."""
    consumer = whole_topic_consumer(kafka, topic)
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), 30)
        return message.value
    finally:
        await consumer.stop()


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT", "SSL"])
def test_each_protocol_connects_kafka_python_and_aiokafka_clients(
    secure_broker: SecureBroker, tmp_path: Path, protocol: str
):
    settings = other_protocol(secure_broker, protocol)
    bootstrap = settings.pop("bootstrap")
    dep = Deployment(bootstrap, tmp_path, prefix=unique_prefix("sec"), kafka=dict(settings))
    try:
        check_connection(dep.settings.kafka)
        dep.create()  # kafka-python admin
        dep.send(dep.topics.items, [catalog(1)[0]], key_field="item_id")  # kafka-python producer
        value = asyncio.run(first_record(dep.settings.kafka, dep.topics.items.name))
        assert value is not None and orjson.loads(value) == catalog(1)[0]
    finally:
        dep.close()


def test_an_ssl_client_without_its_certificate_is_told_so(secure_broker: SecureBroker):
    kafka = KafkaSettings(
        bootstrap=secure_broker.at(4), security_protocol="SSL", ssl_cafile=secure_broker.ca
    )
    with pytest.raises(ConnectionProblem) as refused:
        check_connection(kafka)
    # The alert's name depends on the TLS version and library the two ends settle on.
    at = re.escape(secure_broker.at(4))
    assert re.fullmatch(
        rf"kafka: {at} closed the connection after the TLS alert \w+: the broker refused the "
        r"client certificate \(ssl_certfile: not set\)",
        str(refused.value),
    ), refused.value


REFUSALS = {
    "wrong password": (
        lambda b: {"sasl_password_file": str(b.password_file("not-" + b.password))},
        "kafka: SASL authentication failed for user 'alice' at {at} with SCRAM-SHA-512 "
        "(check the password)",
    ),
    "unknown CA": (
        lambda b: {"ssl_cafile": str(b.other_ca)},
        "kafka: TLS certificate verify failed at {at}: self-signed certificate in certificate "
        "chain (check ssl_cafile: {other_ca})",
    ),
    "plaintext client": (
        lambda b: None,
        "kafka: {at} closed the connection after answering in TLS: it is an SSL or SASL_SSL "
        "listener, but security_protocol is PLAINTEXT",
    ),
}


def refused_settings(broker: SecureBroker, case: str) -> dict[str, str]:
    change = REFUSALS[case][0](broker)
    return {} if change is None else sasl_ssl(broker, **change)


def expected_line(broker: SecureBroker, case: str) -> str:
    return REFUSALS[case][1].format(at=broker.bootstrap, other_ca=broker.other_ca)


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_connection_is_found_within_seconds(secure_broker: SecureBroker, case: str):
    kafka = KafkaSettings(
        bootstrap=secure_broker.bootstrap, **refused_settings(secure_broker, case)
    )
    start = time.monotonic()
    with pytest.raises(ConnectionProblem) as refused:
        check_connection(kafka)
    assert time.monotonic() - start < FAIL_FAST_S
    assert str(refused.value) == expected_line(secure_broker, case)
    assert secure_broker.password not in str(refused.value)


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_worker_exits_with_one_line_and_consumes_nothing(
    secure_broker: SecureBroker, secure_pipe: Pipeline, case: str
):
    secure_pipe.create()
    sent = secure_pipe.send(secure_pipe.topics.events, events(users=3, per_user=2))
    env = env_of(secure_pipe, refused_settings(secure_broker, case))

    start = time.monotonic()
    worker = recprice(env, "worker", timeout_s=PROCESS_S)
    assert worker.returncode != 0
    assert worker.stderr.strip() == expected_line(secure_broker, case)
    assert worker.stdout == ""
    produced = recprice(
        env, "produce", '{"event_id":"x","type":"view","user_id":"u","item_id":"i","ts":1}'
    )
    assert produced.returncode != 0
    assert produced.stderr.strip() == expected_line(secure_broker, case)
    assert time.monotonic() - start < 2 * PROCESS_S

    # Nothing consumed, nothing produced: no committed offset, no output, no extra event.
    assert consumed(secure_pipe) == 0
    assert secure_pipe.count(secure_pipe.topics.events) == sent
    assert secure_pipe.count(secure_pipe.topics.scoring) == 0
    assert secure_pipe.count(secure_pipe.topics.recommendations) == 0
    assert secure_broker.password not in worker.stderr + produced.stderr


def test_a_refused_worker_with_json_logs_says_it_in_one_json_line(
    secure_broker: SecureBroker, secure_pipe: Pipeline
):
    env = env_of(secure_pipe, refused_settings(secure_broker, "wrong password"))
    worker = recprice(env | {"RECPRICE__WORKER__LOG_FORMAT": "json"}, "worker", timeout_s=PROCESS_S)
    assert worker.returncode == 1
    [line] = worker.stderr.splitlines()
    record = orjson.loads(line)
    assert (record["level"], record["logger"]) == ("CRITICAL", "streams.worker.run")
    assert record["message"] == expected_line(secure_broker, "wrong password")
    assert secure_broker.password not in worker.stderr


def test_one_answering_broker_of_the_bootstrap_list_is_enough(secure_broker: SecureBroker):
    settings = sasl_ssl(secure_broker)
    check_connection(KafkaSettings(bootstrap=f"127.0.0.1:1,{secure_broker.bootstrap}", **settings))
    with pytest.raises(ConnectionProblem, match="connection refused at 127.0.0.1:1 "):
        check_connection(KafkaSettings(bootstrap="127.0.0.1:1,127.0.0.1:2", **settings))
