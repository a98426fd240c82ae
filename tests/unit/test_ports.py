"""The one port probe: a listener holds a port, a previous server's TIME_WAIT does not."""

from __future__ import annotations

import socket

import pytest

from provisioner.ports import free_port, port_free, reserve_port


def _time_wait_port() -> int:
    """A port whose only trace is a server-side connection in TIME_WAIT."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the side that closes first keeps the TIME_WAIT, on the server's port
    client.recv(1)
    client.close()
    listener.close()
    return port


def test_a_listener_holds_its_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert not port_free("127.0.0.1", int(listener.getsockname()[1]))


def test_time_wait_of_a_stopped_server_leaves_its_port_free() -> None:
    port = _time_wait_port()
    # Without SO_REUSEADDR the bind fails: this is the state a fixed port is in after `down`.
    with socket.socket() as plain:
        try:
            plain.bind(("127.0.0.1", port))
            reproduced = False
        except OSError:
            reproduced = True
    assert reproduced, "no TIME_WAIT was made: the test proves nothing"
    assert port_free("127.0.0.1", port)


def test_free_port_is_free() -> None:
    assert port_free("127.0.0.1", free_port("127.0.0.1"))


def test_a_reserved_port_is_not_handed_out_yet_a_server_can_listen_on_it() -> None:
    held = reserve_port("127.0.0.1")
    port = held.getsockname()[1]
    try:
        handed = set()
        for _ in range(2000):
            with socket.socket() as other:
                other.bind(("127.0.0.1", 0))
                handed.add(other.getsockname()[1])
        assert port not in handed
        # A server that sets SO_REUSEADDR, as Postgres does, binds and listens on it.
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen()
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            # ... and while it listens, the port cannot be reserved again.
            with pytest.raises(OSError):
                reserve_port("127.0.0.1", port).close()
    finally:
        held.close()
