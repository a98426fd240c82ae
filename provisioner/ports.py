"""Whether a server could listen on a port: one probe, one meaning, for every runtime and doctor."""

from __future__ import annotations

import socket


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind `host:port` now, as Postgres and docker-proxy bind it.

    SO_REUSEADDR as servers set it: connections of a previous server still in TIME_WAIT (a
    fixed port reused a moment after `down`) do not count, a listener does.
    """
    with _socket(host) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port on `host` that nothing listens on at this moment."""
    with _socket(host) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.socket(family, socket.SOCK_STREAM)
