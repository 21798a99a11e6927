"""Throughput under gunicorn (2 workers): the portal's quote page against /healthz of the same app,
driven by wrk (Debian's `apt-get install wrk`) or, without it, a small bounded Python generator
(threads, keep-alive, a fixed duration and request cap)."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

from portal import create_app

from .bulk import BENCH_SECRET_KEY, bench_config
from .generate import BENCH_CLIENT_EMAIL
from .pages import sign_in

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
SLICES = 5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _session_cookie(url: str, quote_path: str) -> str:
    """A signed-in client's session cookie (the same SECRET_KEY as the server's), after a first
    visit of the quote page, so that the session already holds its CSRF token."""
    app = create_app(bench_config(url))
    client = app.test_client()
    sign_in(client, "/espace-client/connexion", BENCH_CLIENT_EMAIL)
    assert client.get(quote_path).status_code == 200
    return client.get_cookie("session").value


def _get(port: int, path: str, cookie: str | None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Cookie": f"session={cookie}"} if cookie else {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def _wrk(port: int, path: str, cookie: str | None, seconds: int, connections: int) -> float:
    command = [shutil.which("wrk"), "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    if cookie:
        command += ["-H", f"Cookie: session={cookie}"]
    output = subprocess.run(command + [f"http://127.0.0.1:{port}{path}"], capture_output=True,
                            text=True, check=True, timeout=seconds + 30).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk {path}: errors\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def _python_load(port: int, path: str, cookie: str | None, seconds: int, connections: int,
                 cap: int = 100_000) -> float:
    """Fallback load: `connections` threads with keep-alive, for `seconds` or `cap` requests."""
    deadline = time.perf_counter() + seconds
    done, errors, lock = [0], [0], threading.Lock()
    headers = {"Cookie": f"session={cookie}"} if cookie else {}

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < deadline and done[0] < cap:
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
            with lock:
                done[0] += ok
                errors[0] += not ok

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors[0]:
        raise RuntimeError(f"{path}: {errors[0]} failed requests")
    return done[0] / (time.perf_counter() - started)


def measure_throughput(url: str, quote_id: int, seconds: int = 10, connections: int = 8) -> dict:
    """Requests per second of the quote page and of /healthz, `seconds` each in SLICES slices
    taken in turn, and their ratio."""
    quote_path = f"/espace-client/devis/{quote_id}"
    cookie = _session_cookie(url, quote_path)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": BENCH_SECRET_KEY,
           "MAIL_OUTBOX_DIR": "/tmp/portal-bench-mail"}
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level",
         "warning", "wsgi:app"], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/healthz", None)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        status, body = _get(port, quote_path, cookie)
        if status != 200 or b"30 lignes" not in body:
            raise RuntimeError(f"the session cookie does not open the quote page ({status})")
        load = _wrk if shutil.which("wrk") else _python_load
        load(port, quote_path, cookie, 2, connections)  # warm-up: workers' caches, pools
        # In turn, a slice of each at a time: a ratio of two loads run one after the other
        # followed whatever else the machine was doing in between.
        page_rates, health_rates = [], []
        for _ in range(SLICES):
            page_rates.append(load(port, quote_path, cookie, seconds // SLICES, connections))
            health_rates.append(load(port, "/healthz", None, seconds // SLICES, connections))
        page, health = statistics.mean(page_rates), statistics.mean(health_rates)
    finally:
        server.terminate()
        server.wait(30)
    return {"page_rps": page, "health_rps": health, "ratio": page / health,
            "tool": "wrk" if shutil.which("wrk") else "python"}
