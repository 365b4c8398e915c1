"""A webhook receiver on loopback for the tests: a real HTTP server that verifies each delivery's Standard
Webhooks signature with the `standardwebhooks` package and can be told to fail its first requests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool


@dataclass
class Receiver:
    """Collects deliveries; answers 500 to the first `fail_first` requests (and to all while `down`)."""

    secret: str = ""
    fail_first: int = 0
    down: bool = False
    requests: int = 0
    webhook_ids: list[str] = field(default_factory=list)  # of every request, accepted or not
    deliveries: list[Delivery] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ember"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        """Block until `count` deliveries were accepted (or fail after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.deliveries) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.deliveries)} of {count} deliveries arrived ({self.requests} requests)"
                self.changed.wait(left)
            return list(self.deliveries)

    def handle(self, headers: dict[str, str], raw: bytes) -> int:
        with self.changed:
            self.requests += 1
            self.webhook_ids.append(headers.get("webhook-id", ""))
            if self.down or self.requests <= self.fail_first:
                self.changed.notify_all()
                return 500
            try:
                Webhook(self.secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            self.deliveries.append(Delivery(headers, json.loads(raw), verified))
            self.changed.notify_all()
            return 204


def start_receiver(receiver: Receiver, port: int = 0) -> Receiver:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server protocol)
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = receiver.handle({key.lower(): value for key, value in self.headers.items()}, raw)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver


def stop_receiver(receiver: Receiver) -> None:
    if receiver.server is not None:
        receiver.server.shutdown()
        receiver.server.server_close()
