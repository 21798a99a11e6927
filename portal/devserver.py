"""`make run` helpers: localstripe, the embedded stand-in for Stripe, listening on 127.0.0.1 only.

    python -m portal.devserver free-port
    python -m portal.devserver localstripe --port PORT [--webhook-url URL] [--store FILE]
    python -m portal.devserver wait URL

localstripe's own `start()` listens on every interface and keeps its state in /tmp; this one
listens on 127.0.0.1 and keeps its state in --store (or in memory only). The webhook secret is read
from STRIPE_WEBHOOK_SECRET, never from the command line (which `ps` shows). The tests start it too.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import socket
import sys
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"
WEBHOOK_EVENTS = ["payment_intent.succeeded", "payment_intent.payment_failed"]


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_localstripe(*, port: int, host: str = HOST, webhook_url: str | None = None,
                      webhook_secret: str | None = None, store: str | None = None) -> None:
    """Run localstripe until interrupted, its webhooks (if any) signed with `webhook_secret`."""
    from aiohttp import web
    from localstripe import resources
    from localstripe.server import app
    from localstripe.webhooks import register_webhook

    _keep_store(resources, store)
    if webhook_url:
        if not webhook_secret:
            raise SystemExit("STRIPE_WEBHOOK_SECRET is required to sign localstripe's webhooks.")
        register_webhook("portal", webhook_url, webhook_secret, WEBHOOK_EVENTS)
    # localstripe reports each webhook delivery on this logger; per-request access logs stay off.
    delivery_log = logging.getLogger("aiohttp.access")
    delivery_log.setLevel(logging.INFO)
    delivery_log.addHandler(logging.StreamHandler())
    print(f"localstripe : http://{host}:{port} (carte de test 4242424242424242)", file=sys.stderr)
    web.run_app(app, host=host, port=port, print=None, access_log=None)


def _keep_store(resources, path: str | None) -> None:
    """Keep localstripe's objects in `path` (so they outlive a restart, like the demo database),
    or in memory only; never in the /tmp file every localstripe on the machine shares."""
    if path is None:
        resources.Store.dump_to_disk = lambda self: None
        return
    try:
        with open(path, "rb") as handle:
            resources.store.update(pickle.load(handle))  # dict.update: no dump per item
    except FileNotFoundError:
        pass
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
        print(f"localstripe : état illisible dans {path} ({error}), démarrage à vide.", file=sys.stderr)

    def dump(store) -> None:
        temporary = f"{path}.tmp"
        with open(temporary, "wb") as handle:
            pickle.dump(dict(store), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)

    resources.Store.dump_to_disk = dump


def wait_until_up(url: str, timeout: float = 20.0) -> bool:
    """Whether `url` answers within `timeout` seconds."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: no proxy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal.devserver")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("free-port", help="print a free TCP port on 127.0.0.1")
    serve = commands.add_parser("localstripe", help="run localstripe on 127.0.0.1")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--webhook-url", help="where to send payment_intent.* events")
    serve.add_argument("--store", help="file keeping localstripe's state between runs")
    wait = commands.add_parser("wait", help="wait until a URL answers")
    wait.add_argument("url")
    wait.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.command == "free-port":
        print(free_port())
    elif args.command == "localstripe":
        serve_localstripe(port=args.port, webhook_url=args.webhook_url,
                          webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET"), store=args.store)
    elif not wait_until_up(args.url, args.timeout):
        print(f"{args.url} ne répond pas.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
