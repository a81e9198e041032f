"""A single KRaft broker with a SASL_SSL client listener, for the security integration tests.

Everything is made at start time under one folder: a test CA and a broker
certificate for 127.0.0.1/localhost (openssl, PKCS12 keystore), a second CA that
signed nothing (the "unknown CA" case), and SCRAM-SHA-512 users written into
the metadata log by Kafka's own ``StorageTool format --add-scram``. The broker
runs from deploy/kafka/lib's jars like deploy/broker.sh's, on loopback ports of
its own: the SASL_SSL client port, its controller (port+1), a PLAINTEXT
inter-broker listener (port+2) that no test client uses, and two more client
listeners for the other protocols: SASL_PLAINTEXT (port+3) and SSL with client
certificates required (port+4).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from streams.offline.local import BROKER_SCRIPT, answers

LIB = BROKER_SCRIPT.parent / "kafka" / "lib"
PORT = int(os.environ.get("RECPRICE_SECURE_BROKER_PORT", "19393"))
USER = "alice"


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr[-2000:]}")


def make_ca(folder: Path, name: str) -> Path:
    """Create a self-signed CA (``name``.key, ``name``.pem) in ``folder``; return the PEM."""
    _run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=recprice {name}"],
        folder,
    )  # fmt: skip
    return folder / f"{name}.pem"


def sign(folder: Path, ca: str, name: str, subject: str, extensions: str) -> Path:
    """Make ``name``.key and a ``name``.pem certificate signed by ``ca``; return the PEM."""
    _run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
         "-out", f"{name}.csr", "-subj", subject],
        folder,
    )  # fmt: skip
    (folder / f"{name}.ext").write_text(extensions)
    _run(
        ["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
         f"{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
         "-out", f"{name}.pem"],
        folder,
    )  # fmt: skip
    return folder / f"{name}.pem"


def make_broker_keystore(folder: Path, ca: str, password: str) -> Path:
    """Sign a broker certificate for 127.0.0.1/localhost with ``ca``; return its PKCS12 store."""
    sign(folder, ca, "broker", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run(
        ["openssl", "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
         "-certfile", f"{ca}.pem", "-name", "broker", "-out", "broker.p12",
         "-passout", f"pass:{password}"],
        folder,
    )  # fmt: skip
    return folder / "broker.p12"


@dataclass
class SecureBroker:
    """One SASL_SSL broker under ``root``; `start` makes its certificates and users."""

    root: Path
    port: int = PORT
    user: str = USER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the SASL_SSL listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        """PEM of the CA that signed the broker's certificate."""
        return self.root / "ca.pem"

    @property
    def other_ca(self) -> Path:
        """PEM of a CA that signed nothing of this broker's."""
        return self.root / "other-ca.pem"

    @property
    def client_cert(self) -> tuple[Path, Path]:
        """PEM certificate and key of a client, signed by `ca`, for the SSL listener."""
        return self.root / "client.pem", self.root / "client.key"

    def at(self, offset: int) -> str:
        """``host:port`` of the listener at ``port + offset`` (3: SASL_PLAINTEXT, 4: SSL)."""
        return f"127.0.0.1:{self.port + offset}"

    @property
    def log(self) -> Path:
        """The broker's log file."""
        return self.root / "broker.log"

    def password_file(self, password: str | None = None) -> Path:
        """Write ``password`` (default: the user's) to a file, as a mounted secret; return it."""
        path = self.root / f"password-{secrets.token_hex(4)}"
        path.write_text((password if password is not None else self.password) + "\n")
        return path

    def start(self, timeout_s: float = 120.0) -> None:
        """Make the certificates, format the storage with the SCRAM user and start the node."""
        for port in range(self.port, self.port + 5):
            if answers(f"127.0.0.1:{port}"):
                raise RuntimeError(f"port {port} on 127.0.0.1 is taken by another process")
        subprocess.run(["bash", str(BROKER_SCRIPT), "jars"], check=True, stdin=subprocess.DEVNULL)
        self.root.mkdir(parents=True, exist_ok=True)
        store_password = secrets.token_hex(8)
        make_ca(self.root, "ca")
        make_ca(self.root, "other-ca")
        keystore = make_broker_keystore(self.root, "ca", store_password)
        sign(self.root, "ca", "client", f"/CN={self.user}", "extendedKeyUsage=clientAuth\n")
        config = self._write_config(keystore, store_password)
        cluster = _kafka_uuid()
        java = self._java()
        scram = f"SCRAM-SHA-512=[name={self.user},password={self.password}]"
        _run(
            [*java, "kafka.tools.StorageTool", "format", "-c", str(config), "--standalone",
             "-t", cluster, "--add-scram", scram],
            self.root,
        )  # fmt: skip
        with (self.root / "stdout.log").open("ab") as out:
            self._proc = subprocess.Popen(
                [*java, "kafka.Kafka", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not (answers(self.bootstrap) and "Kafka Server started" in self._log_text()):
            if self._proc.poll() is not None:
                raise RuntimeError(f"the SASL_SSL broker exited: {self._log_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the SASL_SSL broker did not start in {timeout_s} s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the node (SIGTERM, SIGKILL after 30 s)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _java(self) -> list[str]:
        return [
            "java", "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
            "-cp", f"{LIB}/*",
        ]  # fmt: skip

    def _write_config(self, keystore: Path, store_password: str) -> Path:
        port, data = self.port, self.root / "data"
        client, controller, internal, sasl_plain, tls = (
            f"SASL_SSL://127.0.0.1:{port}",
            f"CONTROLLER://127.0.0.1:{port + 1}",
            f"INTERNAL://127.0.0.1:{port + 2}",
            f"SASL_PLAINTEXT://127.0.0.1:{port + 3}",
            f"SSL://127.0.0.1:{port + 4}",
        )
        clients = f"{client},{internal},{sasl_plain},{tls}"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        config = self.root / "server.properties"
        config.write_text(
            f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{port + 1}
listeners={clients},{controller}
advertised.listeners={clients}
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL,\
SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram}
listener.name.ssl.ssl.client.auth=required
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location={self.ca}
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={store_password}
ssl.key.password={store_password}
log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
"""
        )
        (self.root / "log4j2.properties").write_text(
            f"""rootLogger.level=WARN
rootLogger.appenderRef.file.ref=FILE
appender.file.type=File
appender.file.name=FILE
appender.file.fileName={self.log}
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
logger.server.name=kafka.server.KafkaRaftServer
logger.server.level=INFO
"""
        )
        return config


def _kafka_uuid() -> str:
    """A Kafka cluster id: base64url of 16 random bytes, unpadded, not starting with '-'."""
    import base64

    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not text.startswith("-"):
            return text
