"""A fault-injecting HTTP proxy on loopback, to put in front of gcp-storage-emulator.

It forwards every request to the emulator and, by a seeded schedule, answers some itself with
429/500/503 (the emulator never sees them), resets some connections before forwarding (the request
is lost) or after (the emulator acted, the client never hears of it: what makes a retried write
unsafe), cuts some response bodies short (the headers promise more bytes than arrive, as when a
connection dies mid-download) and delays some. `counts` says what it injected. "short" sends half
the body under a Content-Length that says so: a loss no HTTP layer can see, only a checksum or the
length a range read expected.

It stops by itself after `lifetime` seconds or `max_requests` requests (then it refuses
connections), so a test that hangs cannot keep it alive.
"""

import collections
import http.client
import http.server
import random
import re
import socket
import struct
import threading
import time
import urllib.parse

KINDS = ("429", "500", "503", "reset_before", "reset_after", "truncate", "delay", "short")
LOOPBACK_URL = re.compile(rb"http://127\.0\.0\.1:\d+")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "trailer",
              "content-length"}


class FaultProxy:
    """`with FaultProxy(upstream, rates, seed) as proxy:` then talk to `proxy.url`.

    Args:
        upstream: the emulator's URL (`http://127.0.0.1:PORT`).
        rates: `{kind: probability}` over `KINDS`; what remains is forwarded faithfully.
        seed: seeds the schedule (one draw per request, in arrival order).
        delay: seconds a "delay" waits before forwarding.
        always: `{regex: kind}`: every request whose path (with its query) matches gets that fault
            (an object that keeps failing however often it is retried).
        lifetime, max_requests: bounds after which the proxy stops.
    """

    def __init__(self, upstream, rates, seed=0, delay=0.3, lifetime=300.0, max_requests=20000, always=None):
        self.always = dict(always or {})
        unknown = (set(rates) | set(self.always.values())) - set(KINDS)
        if unknown or sum(rates.values()) > 1:
            raise ValueError(f"bad fault rates {rates}")
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.rates, self.delay = dict(rates), delay
        self.lifetime, self.max_requests = lifetime, max_requests
        self.counts = collections.Counter()
        self._random, self._lock = random.Random(seed), threading.Lock()
        self.enabled = True  # False: forward everything (a fault-free reference through the same path)
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self.seen = collections.deque(maxlen=10000)  # (method, path, fault kind) of each request
        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def draw(self, method, path):
        """The next request's fault kind, or None (forward it faithfully)."""
        with self._lock:
            self.counts["requests"] += 1
            if self.counts["requests"] >= self.max_requests:
                threading.Thread(target=self.stop, daemon=True).start()
            roll = self._random.random()  # drawn for every request: `always` leaves the others' schedule as it was
            forced = next((kind for pattern, kind in self.always.items() if re.search(pattern, path)), None)
            chosen = forced if self.enabled else None
            for kind in KINDS if self.enabled and chosen is None else ():
                roll -= self.rates.get(kind, 0.0)
                if roll < 0:
                    chosen = kind
                    break
            if chosen is not None:
                self.counts[chosen] += 1
                self.counts["always"] += chosen is forced  # of them, those an `always` path got
            self.seen.append((method, path, chosen))
            return chosen

    def injected(self):
        """`{kind: count}` of the faults injected so far."""
        with self._lock:
            return {kind: self.counts[kind] for kind in KINDS if self.counts[kind]}

    def start(self):
        self._thread.start()
        self._timer.start()
        return self

    def stop(self):
        """Stop serving (idempotent); open connections end with their request."""
        self._timer.cancel()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up on a delayed answer resets its connection: expected here


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client library's connection pool expects
    owner = None  # the FaultProxy, set by a subclass
    timeout = 30  # an idle client connection is dropped after this

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reset(self):
        """Drop the connection with a TCP reset (no response at all)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _error(self, status):
        body = ('{"error": {"code": %d, "message": "injected by the test proxy"}}' % status).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, body):
        upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body if body or self.command in ("POST", "PUT") else None,
                             headers=headers)
            response = upstream.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            upstream.close()

    def _handle(self):
        body = self._body()
        kind = self.owner.draw(self.command, self.path)
        if kind in ("429", "500", "503"):
            return self._error(int(kind))
        if kind == "reset_before":
            return self._reset()
        if kind == "delay":
            time.sleep(self.owner.delay)
        status, headers, payload = self._forward(body)
        if any(n.lower() == "content-type" and "json" in v for n, v in headers):
            # the emulator writes its own address into an object's mediaLink when the object is made
            # (GCS: storage.googleapis.com); point it here, or downloads would go around the proxy
            payload = LOOPBACK_URL.sub(self.owner.url.encode(), payload)
        if kind == "reset_after":
            return self._reset()
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if kind == "short":
            payload = payload[: len(payload) // 2]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if kind == "truncate" and self.command != "HEAD":
            self.wfile.write(payload[: len(payload) // 2])  # fewer bytes than promised, then the connection ends
            self.wfile.flush()
            return self._reset()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle
