"""A loopback HTTP server that accepts and discards Sentry envelopes.

Run as ``python -m bench.sink PORT``; it binds 127.0.0.1 only.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EnvelopeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        body = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing: the sink receives thousands of envelopes a second."""


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Ignore clients that go away: servers under test are stopped mid-request."""


def main() -> None:
    server = SinkServer(("127.0.0.1", int(sys.argv[1])), EnvelopeHandler)
    server.serve_forever()


if __name__ == "__main__":
    main()
