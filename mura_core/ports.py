"""Network addresses: free ports for tests and benchmarks, and `host:port` parsing for settings."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from urllib.parse import urlsplit


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports nothing listens on now (held open together while choosing)."""
    with ExitStack() as stack:
        probes = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)
        ]
        for probe in probes:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    return free_ports(1, host)[0]


def host_port(address: str) -> tuple[str, int]:
    """`127.0.0.1:8500` or `http://host:8080/` -> (host, port); settings always carry the port."""
    parsed = urlsplit(address if "://" in address else f"//{address}")
    if parsed.port is None:
        from mura_core.errors import ConfigError

        raise ConfigError(f"address {address!r} has no port; write it as host:port (e.g. 127.0.0.1:8500)")
    return parsed.hostname or "127.0.0.1", parsed.port
