"""The Docker Engine API calls on the path of every `up` and `down`, JSON in and out.

The `docker` SDK takes a tenth of a second to import (requests, urllib3 and its object models),
which is a quarter of a warm start's own time. These calls (ping, look up an image, create,
start and inspect a container, list and remove what an environment owns, commit a cache entry)
are plain HTTP requests: over the engine's local Unix socket they go through the standard
library's http.client. Any other engine (tcp://, TLS, ssh://) is reached through the SDK's
own session, so every transport it supports still works. Streams (pull, exec, logs, archives
read back) stay with the SDK, which is imported only when one is needed.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from provisioner.errors import DockerUnavailableError, first_line

DEFAULT_SOCKET = "/var/run/docker.sock"
F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)
REQUEST_TIMEOUT = 120.0


class EngineError(Exception):
    """The engine answered a request with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404


class EngineUnreachable(Exception):
    """No answer from the engine: no socket, refused, reset or timed out."""


Meanwhile = Callable[[], object]


class Transport(Protocol):
    def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        content_type: str | None,
        timeout: float,
        meanwhile: Meanwhile | None = None,
    ) -> tuple[int, bytes]:
        """The status and body of the answer; `meanwhile()` runs while the engine works."""
        ...


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class UnixSocket:
    """HTTP over the engine's Unix socket, one connection per request (a cheap connect)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        content_type: str | None,
        timeout: float,
        meanwhile: Meanwhile | None = None,
    ) -> tuple[int, bytes]:
        connection = _UnixConnection(self.path, timeout)
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            try:
                connection.request(method, path, body=body, headers=headers)
            except (OSError, http.client.HTTPException) as exc:
                raise EngineUnreachable(_reason(exc)) from None
            if meanwhile is not None:
                meanwhile()  # the request is the engine's now: this thread is free until the answer
            try:
                response = connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise EngineUnreachable(_reason(exc)) from None
        finally:
            connection.close()


class SdkSession:
    """The same requests through the SDK's session: TCP, TLS, SSH, whatever DOCKER_HOST says."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.api = client.api

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        content_type: str | None,
        timeout: float,
        meanwhile: Meanwhile | None = None,
    ) -> tuple[int, bytes]:
        import requests

        if meanwhile is not None:
            meanwhile()  # the session waits for the answer in this thread: first, then
        url = f"{self.api.base_url}/v{self.api.api_version}{path}"
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            response = self.api.request(method, url, data=body, headers=headers, timeout=timeout)
        except requests.exceptions.RequestException as exc:
            raise EngineUnreachable(_reason(exc)) from None
        return response.status_code, response.content


class Engine:
    """A Docker engine, spoken to in the Engine API's own terms.

    Paths carry no API version: the engine answers in its own, and the fields used here
    have been stable since API 1.25.
    """

    def __init__(self, transport: Transport, address: str = f"unix://{DEFAULT_SOCKET}") -> None:
        self.transport = transport
        self.address = address  # where it answers (unix://, tcp://, ssh://): see engines.py

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, object] | None = None,
        *,
        json_body: object = None,
        data: bytes | None = None,
        content_type: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
        meanwhile: Meanwhile | None = None,
    ) -> Any:
        """The decoded JSON answer (None when there is none), or EngineError.

        `meanwhile`, if given, is called once, while the engine works on the request (over the
        local socket; other transports call it before they send).
        """
        if query:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(
                {key: _query_value(value) for key, value in query.items() if value is not None}
            )
        if json_body is not None:
            data, content_type = json.dumps(json_body).encode(), "application/json"
        status, raw = self.transport.send(method, path, data, content_type, timeout, meanwhile)
        if status >= 400:
            raise EngineError(status, _error_message(raw) or f"HTTP {status}")
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", errors="replace")

    def ping(self, timeout: float) -> None:
        self.request("GET", "/_ping", timeout=timeout)

    def image(self, name: str) -> dict[str, Any] | None:
        """The image's inspection, or None when the engine has no image of that name."""
        return self._inspect(f"/images/{_quote(name)}/json")

    def container(self, name: str) -> dict[str, Any] | None:
        """The container's inspection, or None when there is none of that name or ID."""
        return self._inspect(f"/containers/{_quote(name)}/json")

    def _inspect(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.request("GET", path)
        except EngineError as exc:
            if exc.not_found:
                return None
            raise
        return found

    def containers(self, labels: list[str]) -> list[dict[str, Any]]:
        """Every container, running or not, that carries all of `labels` (key or key=value)."""
        found: list[dict[str, Any]] = self.request(
            "GET", "/containers/json", {"all": 1, "filters": {"label": labels}}
        )
        return found

    def networks(self, labels: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.request(
            "GET", "/networks", {"filters": {"label": labels}}
        )
        return found

    def put_archive(self, container: str, path: str, tar: bytes) -> None:
        self.request(
            "PUT",
            f"/containers/{_quote(container)}/archive",
            {"path": path},
            data=tar,
            content_type="application/x-tar",
        )


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _query_value(value: object) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", "")).strip()
    except (ValueError, AttributeError):
        return raw.decode("utf-8", errors="replace").strip()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return str(exc) or type(exc).__name__


def engine_errors(method: F) -> F:
    """Turn a lost connection to the engine into one clear DockerUnavailableError."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            if not lost_engine(exc):
                raise
            raise DockerUnavailableError(
                f"the Docker engine stopped answering ({first_line(exc)})",
                hint="start Docker again, then `envctl gc` removes whatever was left behind",
            ) from None

    return wrapper  # type: ignore[return-value]


def lost_engine(exc: Exception) -> bool:
    """Whether `exc` says the engine did not answer (not that it answered with an error)."""
    if isinstance(exc, EngineUnreachable | ConnectionError):  # reset, broken pipe, refused
        return True
    # The SDK's exceptions exist only once it was imported for a stream.
    errors, requests = sys.modules.get("docker.errors"), sys.modules.get("requests")
    if errors is None or requests is None or isinstance(exc, errors.APIError):
        return False
    return isinstance(exc, (requests.exceptions.RequestException, errors.DockerException))


def guarded_calls(cls: C) -> C:
    """Wrap every method the class defines (all but dunders) with engine_errors."""
    for key, value in list(vars(cls).items()):
        if callable(value) and not key.startswith("__"):
            setattr(cls, key, engine_errors(value))
    return cls
