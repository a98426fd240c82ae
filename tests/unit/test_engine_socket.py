"""The Engine API client over a Unix socket, against a small HTTP server of the test's own."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.runtime.engine import Engine, EngineError, EngineUnreachable, UnixSocket


class SlowEngine:
    """Answers every request with `{}`, but only once `release` is set (as a start takes time)."""

    def __init__(self, path: Path) -> None:
        self.received = threading.Event()
        self.release = threading.Event()
        self.released_in_time = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(4096)
            self.received.set()
            self.released_in_time = self.release.wait(timeout=10)
            body = json.dumps({"answered": True}).encode()
            with contextlib.suppress(OSError):  # a client that gave up has closed its end
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )


@pytest.fixture
def slow_engine(tmp_path: Path) -> Iterator[SlowEngine]:
    server = SlowEngine(tmp_path / "engine.sock")
    yield server
    server.release.set()
    server.thread.join(timeout=10)
    server.listener.close()


def test_meanwhile_runs_after_the_request_is_sent_and_before_the_answer(
    tmp_path: Path, slow_engine: SlowEngine
) -> None:
    seen: list[bool] = []

    def meanwhile() -> None:
        # The engine has the request, and has not answered: the work overlaps the engine's.
        seen.append(slow_engine.received.wait(timeout=10))
        slow_engine.release.set()

    engine = Engine(UnixSocket(str(tmp_path / "engine.sock")))
    answer = engine.request("POST", "/containers/x/start", meanwhile=meanwhile, timeout=10)
    assert seen == [True]
    assert slow_engine.released_in_time  # so meanwhile ran before the answer, not after it
    assert answer == {"answered": True}


def test_an_error_of_meanwhile_is_its_own_not_the_engines(
    tmp_path: Path, slow_engine: SlowEngine
) -> None:
    def meanwhile() -> None:
        raise OSError("an import that failed")

    engine = Engine(UnixSocket(str(tmp_path / "engine.sock")))
    with pytest.raises(OSError, match="an import that failed") as caught:
        engine.request("POST", "/containers/x/start", meanwhile=meanwhile, timeout=10)
    assert not isinstance(caught.value, (EngineUnreachable, EngineError))


def test_no_socket_is_unreachable_and_meanwhile_never_runs(tmp_path: Path) -> None:
    ran: list[bool] = []
    engine = Engine(UnixSocket(str(tmp_path / "absent.sock")))
    with pytest.raises(EngineUnreachable, match="No such file"):
        engine.request("GET", "/_ping", meanwhile=lambda: ran.append(True), timeout=2)
    assert ran == []
