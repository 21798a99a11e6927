"""A real HTTP receiver for webhook tests: a threaded server on 127.0.0.1, on a free port, keeping
every request it gets (headers and raw body) and answering as told.

`answer(...)` sets how the next requests are answered: a status code, a delay before answering, a
long body streamed chunk by chunk (to see the client stop reading), a redirect, or a body dripped
one byte at a time. `stop()` closes the port and every open connection; `start()` listens on the
same port again ("down, then back"). `running_receiver()` starts one and stops it after.

`WebhookReceiver(tls=True)` answers HTTPS with a certificate for "localhost" signed by a test CA
(tests/webhook_tls/, `TEST_CA`), and records the name each client asked for (SNI).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .smtp import free_port

CHUNK = 64 * 1024
TLS_FILES = Path(__file__).resolve().parent / "webhook_tls"
TEST_CA = TLS_FILES / "ca.pem"  # signed the receiver's certificate for "localhost"


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: Message  # case-insensitive: request.headers["portail-signature"]
    body: bytes
    client_port: int  # the client's side of the connection: the same for a reused connection
    received_at: float  # time.time() when its body was read


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering
    stream_bytes: int = 0  # when > 0: a body this long, written in 64 KiB chunks
    location: str | None = None  # a Location header (give a 3xx status)
    drip_interval: float = 0.0  # when > 0: the body sent one byte every `drip_interval` seconds
    hang_up: bool = False  # close the connection after answering, without announcing it


@dataclass
class Stream:
    """What the receiver managed to write of a streamed or dripped body."""

    declared: int
    written: int = 0
    complete: bool = False


@dataclass
class _State:
    answer: Answer = field(default_factory=Answer)
    requests: list[ReceivedRequest] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    connections: set[socket.socket] = field(default_factory=set)
    server_names: list[str | None] = field(default_factory=list)  # SNI of each TLS connection
    on_request: Callable[[ReceivedRequest], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real platform's server
    # The answer's headers and body are two writes: with Nagle, the body would wait for the
    # client's delayed ACK (some 40 ms a request).
    disable_nagle_algorithm = True
    timeout = 30  # an idle kept-alive connection's thread ends eventually

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.state.lock:
            self.server.state.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_POST(self) -> None:
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received = ReceivedRequest(self.command, self.path, self.headers, body, self.client_address[1],
                                   time.time())
        with state.lock:
            state.requests.append(received)
            answer, on_request = state.answer, state.on_request
        if on_request is not None:
            on_request(received)
        try:
            self._answer(answer)
        except OSError:
            self.close_connection = True  # the client went away (timeout, answer too long)

    def _answer(self, answer: Answer) -> None:
        if answer.delay:
            time.sleep(answer.delay)
        long_body = answer.stream_bytes or (len(answer.body) if answer.drip_interval else 0)
        self.send_response(answer.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(long_body or len(answer.body)))
        if answer.location:
            self.send_header("Location", answer.location)
        self.end_headers()
        if not long_body:
            self.wfile.write(answer.body)
            self.close_connection = answer.hang_up
            return
        stream = Stream(declared=long_body)
        with self.server.state.lock:
            self.server.state.streams.append(stream)
        self.close_connection = True
        if answer.drip_interval:
            for byte in answer.body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                stream.written += 1
                time.sleep(answer.drip_interval)
        else:
            while stream.written < long_body:
                chunk = min(CHUNK, long_body - stream.written)
                self.wfile.write(b"x" * chunk)
                stream.written += chunk
        stream.complete = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet tests


class _Server(ThreadingHTTPServer):
    state: _State


class WebhookReceiver:
    """Start/stop a recording HTTP server on 127.0.0.1:`port`; `url` is where to send webhooks."""

    def __init__(self, *, tls: bool = False) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.state = _State()
        self.tls = self._tls_context() if tls else None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/webhooks", *, host: str | None = None) -> str:
        return f"{'https' if self.tls else 'http'}://{host or self.host}:{self.port}{path}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        server = _Server((self.host, self.port), _Handler)  # allow_reuse_address: same port again
        server.state = self.state
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._server = server
        self._thread.start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a server going down."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self.state.lock:
            connections = list(self.state.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)

    def answer(self, status: int = 200, **options: object) -> None:
        """How to answer from now on, e.g. `answer(500)`, `answer(200, delay=2)`,
        `answer(302, location=...)`, `answer(200, stream_bytes=10_000_000)`,
        `answer(200, body=b"…", drip_interval=0.2)`."""
        with self.state.lock:
            self.state.answer = Answer(status=status, **options)

    def on_request(self, callback: Callable[[ReceivedRequest], None] | None) -> None:
        """Call `callback(request)` on each request received, before answering it."""
        with self.state.lock:
            self.state.on_request = callback

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    @property
    def streams(self) -> list[Stream]:
        with self.state.lock:
            return list(self.state.streams)

    @property
    def server_names(self) -> list[str | None]:
        with self.state.lock:
            return list(self.state.server_names)

    def event_ids(self) -> list[str]:
        return [request.headers["Portail-Event-Id"] for request in self.requests]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until `condition()` holds (a generous bound: a hang fails instead of blocking)."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out waiting for the receiver"
            time.sleep(0.02)


    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(TLS_FILES / "server.pem", TLS_FILES / "server-key.pem")

        def record_name(_socket, server_name, _context) -> None:
            with self.state.lock:
                self.state.server_names.append(server_name)

        context.sni_callback = record_name
        return context


@contextlib.contextmanager
def running_receiver(*, tls: bool = False) -> Iterator[WebhookReceiver]:
    """A started receiver, stopped on leaving."""
    receiver = WebhookReceiver(tls=tls)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
