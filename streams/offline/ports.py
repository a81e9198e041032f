"""Loopback ports for the processes the offline tools start (no Kafka client imported)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a loopback TCP port that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
