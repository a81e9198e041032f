"""Local processes for the demo and the integration tests: broker, cluster and workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import KafkaAdminClient

from streams.connection import kafka_python_options
from streams.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
BROKER_SCRIPT = ROOT / "deploy" / "broker.sh"


def answers(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def start_local_broker(bootstrap: str) -> None:
    """Start deploy/broker.sh's broker on the port of ``bootstrap`` (loopback only)."""
    host, _, port = bootstrap.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"the local broker listens on loopback only, not {host}")
    env = dict(os.environ, RECPRICE_BROKER_PORT=port)
    subprocess.run(["bash", str(BROKER_SCRIPT), "start"], check=True, env=env)


def stop_local_broker(bootstrap: str) -> None:
    """Stop the broker that :func:`start_local_broker` started."""
    env = dict(os.environ, RECPRICE_BROKER_PORT=bootstrap.rpartition(":")[2])
    subprocess.run(["bash", str(BROKER_SCRIPT), "stop"], check=False, env=env)


@dataclass(frozen=True)
class PartitionState:
    """Where one partition lives: its leader, its replicas and those in sync (node ids)."""

    leader: int
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]


@dataclass(frozen=True)
class LocalCluster:
    """deploy/broker.sh's 3-node KRaft cluster: node i (1..3) serves base_port + 10*(i-1)."""

    base_port: int = 19192
    size: int = 3

    @property
    def nodes(self) -> range:
        """The node ids, which are also the Kafka broker ids."""
        return range(1, self.size + 1)

    def node_bootstrap(self, node: int) -> str:
        """``host:port`` of one node's client listener."""
        return f"127.0.0.1:{self.base_port + 10 * (node - 1)}"

    @property
    def bootstrap(self) -> str:
        """Every node, so that clients still connect with any one of them down."""
        return ",".join(self.node_bootstrap(node) for node in self.nodes)

    def answering(self) -> list[int]:
        """Return the nodes that accept connections."""
        return [node for node in self.nodes if answers(self.node_bootstrap(node))]

    def start(self) -> None:
        """Start the nodes that do not run and wait until all are registered and unfenced."""
        self._script("start", "--brokers", str(self.size))

    def stop(self) -> None:
        """Stop every node cleanly (SIGKILL after 30 s)."""
        self._script("stop", "--brokers", str(self.size), check=False)

    def kill_node(self, node: int) -> None:
        """SIGKILL one node, as a crash would."""
        self._script("kill-node", str(node))

    def start_node(self, node: int) -> None:
        """Restart one node on its data and wait until it is registered and unfenced."""
        self._script("start-node", str(node))

    def _script(self, *args: str, check: bool = True) -> None:
        env = dict(os.environ, RECPRICE_CLUSTER_PORT=str(self.base_port))
        subprocess.run(["bash", str(BROKER_SCRIPT), *args], check=check, env=env)


def partition_states(kafka: KafkaSettings, topic: str) -> dict[int, PartitionState]:
    """Partition -> its leader and replicas, from the cluster's current metadata."""
    admin = KafkaAdminClient(**kafka_python_options(kafka), client_id="recprice-local")
    try:
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    return {
        part["partition_index"]: PartitionState(
            part["leader_id"], tuple(part["replica_nodes"]), tuple(part["isr_nodes"])
        )
        for part in described["partitions"]
    }


def wait_in_sync(
    kafka: KafkaSettings, topic: str, timeout_s: float = 30.0
) -> dict[int, PartitionState]:
    """Wait until every replica of every partition of ``topic`` is in sync; return the state."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = partition_states(kafka, topic)
        # A node that has not yet learnt of a new topic describes it with no partitions.
        if state and all(set(p.in_sync) == set(p.replicas) for p in state.values()):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic} not fully in sync after {timeout_s} s: {state}")
        time.sleep(0.5)


def spawn_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Run ``recprice worker`` in a child process configured by RECPRICE__ variables."""
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "worker"],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM (Faust's clean shutdown), then SIGKILL if it hangs; return the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
