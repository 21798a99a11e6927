"""Webhooks' HTTP: one POST, to an address checked by the portal, within a deadline.

The host is resolved here and every address it resolves to is checked (metadata addresses
always refused, local ones unless WEBHOOKS_ALLOW_LOCAL); the socket then connects to a checked
address, never to a second resolution, so DNS rebinding cannot swap it, while Host and TLS (SNI,
certificate) keep the name. Redirects are not followed; connecting, sending and reading share one
WEBHOOK_TIMEOUT deadline (each read waits at most what is left of it); at most 64 KiB of the answer
are read. A pass keeps one connection per (scheme, host, port), opened to a checked address.
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask_babel import gettext as _

from ..network import is_local_address, is_metadata_address
from .transports import DeliveryError

MAX_ANSWER_BYTES = 64 * 1024
EXCERPT_CHARS = 1000


@dataclass(frozen=True)
class Answer:
    """What the endpoint answered: its status, where it redirects to, its first characters."""

    status: int
    location: str | None
    excerpt: str | None


class WebhookClient:
    """The HTTP connections of one pass: one per (scheme, host, port), to an address checked when
    it was opened."""

    def __init__(self, *, timeout: float, https_only: bool, allow_local: bool) -> None:
        self.timeout = timeout
        self.https_only = https_only
        self.allow_local = allow_local
        self.connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self.tls: ssl.SSLContext | None = None  # made on the first https endpoint of the pass

    @classmethod
    def from_config(cls, config: Any) -> WebhookClient:
        return cls(timeout=config["WEBHOOK_TIMEOUT"], https_only=config["WEBHOOKS_HTTPS_ONLY"],
                   allow_local=config["WEBHOOKS_ALLOW_LOCAL"])

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body` to `url` within the deadline; raises DeliveryError (French) when no answer."""
        scheme, host, port, path = _target(url, https_only=self.https_only)
        deadline = time.monotonic() + self.timeout
        key = (scheme, host, port)
        reused = key in self.connections and self.connections[key].sock is not None
        try:
            try:
                return self._exchange(key, path, body, headers, deadline)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused:
                    raise
                # A kept-alive connection the server had closed meanwhile: once more, on a fresh one.
                self._drop(key)
                return self._exchange(key, path, body, headers, deadline)
        except DeliveryError:
            self._drop(key)
            raise
        except (OSError, http.client.HTTPException) as error:
            self._drop(key)
            raise _describe(error, host=host, port=port, timeout=self.timeout) from error

    def close(self) -> None:
        for key in list(self.connections):
            self._drop(key)

    def _exchange(self, key: tuple[str, str, int], path: str, body: bytes, headers: dict[str, str],
                  deadline: float) -> Answer:
        connection = self.connections.get(key) or self._open(key)
        left = _time_left(deadline)
        connection.timeout = left  # the connect's timeout, when it (re)connects
        if connection.sock is not None:
            connection.sock.settimeout(left)
        connection.response_class = functools.partial(_DeadlineResponse, deadline=deadline)
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(MAX_ANSWER_BYTES + 1)
        if len(data) > MAX_ANSWER_BYTES or not response.isclosed():
            self._drop(key)  # the rest is never read: the connection cannot serve another request
        return Answer(response.status, response.getheader("Location"), _excerpt(data, response))

    def _open(self, key: tuple[str, str, int]) -> http.client.HTTPConnection:
        scheme, host, port = key
        addresses = _checked_addresses(host, port, allow_local=self.allow_local)
        if scheme == "https":
            self.tls = self.tls or tls_context()
            connection: http.client.HTTPConnection = _PinnedHTTPSConnection(host, port, context=self.tls)
        else:
            connection = _PinnedHTTPConnection(host, port)
        connection.addresses = addresses
        self.connections[key] = connection
        return connection

    def _drop(self, key: tuple[str, str, int]) -> None:
        connection = self.connections.pop(key, None)
        if connection is not None:
            connection.close()


def tls_context() -> ssl.SSLContext:
    """The system's certificate authorities, host names checked: the default of `ssl`."""
    return ssl.create_default_context()


def _target(url: str, *, https_only: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of `url`, or a permanent DeliveryError."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        parts, port = None, None
    scheme = parts.scheme.lower() if parts else ""
    if parts is None or scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(_("Adresse du webhook invalide : %(url)s.", url=url[:300]), permanent=True)
    if https_only and scheme != "https":
        raise DeliveryError(_("Adresse refusée : seules les adresses https:// sont autorisées."),
                            permanent=True)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def _checked_addresses(host: str, port: int, *, allow_local: bool) -> list[tuple]:
    """Every address `host` resolves to, each allowed, as (family, type, proto, sockaddr)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise DeliveryError(_("Nom d'hôte introuvable : %(host)s.", host=host)) from error
    for _family, _type, _proto, _name, sockaddr in found:
        address = sockaddr[0]
        if is_metadata_address(address):
            raise DeliveryError(_("Adresse refusée : %(host)s désigne %(address)s, un service de "
                                  "métadonnées du cloud.", host=host, address=address), permanent=True)
        if not allow_local and is_local_address(address):
            raise DeliveryError(_("Adresse refusée : %(host)s désigne %(address)s, une adresse locale "
                                  "ou privée.", host=host, address=address), permanent=True)
    return [(family, type_, proto, sockaddr) for family, type_, proto, _name, sockaddr in found]


def _connect(addresses: list[tuple], timeout: float | None) -> socket.socket:
    """A socket connected to the first of the checked `addresses` that answers."""
    error: OSError = ConnectionError("no address")
    for family, type_, proto, sockaddr in addresses:
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as refused:
            sock.close()
            error = refused
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to `addresses`, checked beforehand, and never resolves the host again."""

    addresses: list[tuple]

    def connect(self) -> None:
        self.sock = _connect(self.addresses, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection, _PinnedHTTPConnection):
    """HTTPS's `connect` wraps what its parent's `connect` opened: the pinned socket above, with
    SNI and the certificate checked against the host name."""


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, each wait bounded by what is left before the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.raw = sock.makefile("rb", buffering=0)  # holds the socket open like http.client's own

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self.sock.settimeout(_time_left(self.deadline))
        return self.raw.readinto(buffer)

    def close(self) -> None:
        self.raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """An answer read through `_DeadlineReader`: a server dripping bytes cannot outlast the deadline."""

    def __init__(self, sock: socket.socket, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError  # described as the timeout it is (_describe)
    return left


def _excerpt(data: bytes, response: http.client.HTTPResponse) -> str | None:
    """The answer's first characters, decoded leniently (its charset, else UTF-8)."""
    charset = response.msg.get_content_charset() or "utf-8"
    try:
        text = data[:EXCERPT_CHARS * 4].decode(charset, errors="replace")
    except LookupError:
        text = data[:EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS] or None


def _describe(error: Exception, *, host: str, port: int, timeout: float) -> DeliveryError:
    """A French diagnostic of a failed exchange, for the delivery log."""
    reason = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        message = _("Pas de réponse complète en %(seconds)s s.", seconds=timeout)
    elif isinstance(error, ssl.SSLError):
        message = _("Erreur TLS : %(reason)s.", reason=reason)
    elif isinstance(error, ConnectionRefusedError):
        message = _("Connexion refusée par %(host)s:%(port)s.", host=host, port=port)
    elif isinstance(error, http.client.HTTPException):
        message = _("Réponse HTTP invalide : %(reason)s.", reason=reason)
    else:
        message = _("Connexion impossible à %(host)s:%(port)s : %(reason)s.", host=host, port=port,
                    reason=reason)
    return DeliveryError(message)

