"""Local processes for the demo and the integration tests: broker and workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
