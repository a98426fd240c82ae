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


def reserve_port(host: str, port: int | None = None) -> socket.socket:
    """A socket bound to `host:port` (any free port when None) and not listening: while it is
    open, no other `bind` to port 0 gets that port, yet a server that sets SO_REUSEADDR, as
    Postgres does, can still bind and listen on it. OSError when the port is taken.

    What a server sharing this machine's network listens on is picked here, and held until
    the server is ready: between a probe that lets the port go and the server's own bind
    (after initdb, a second later), any other process could take it.
    """
    probe = _socket(host)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port or 0))
    except OSError:
        probe.close()
        raise
    return probe


def _socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.socket(family, socket.SOCK_STREAM)
