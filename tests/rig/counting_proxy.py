"""A loopback HTTP proxy that forwards every request to one server and counts the answers.

The tests put it in front of a real Orthanc node to see the statuses the client received
(for example how many 503 answers a cluster gave and the client retried).
"""
from __future__ import annotations

import collections
import hashlib
import http.client
import http.server
import threading


class CountingProxy:
    """Forward ``self.url`` to ``127.0.0.1:target_port``; count what goes through.

    ``requests`` lists each request forwarded (``"GET /system"``), ``statuses`` counts the
    answers by status, ``bodies`` counts ``(method, path, SHA-1 of the body)`` of each
    request with a body (how many times one file was sent). Any client pointed at ``url`` is
    counted the same way.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.statuses = collections.Counter()
        self.requests = []
        self.bodies = collections.Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.requests.append(f"{self.command} {self.path}")
                    if body:
                        proxy.bodies[(self.command, self.path,
                                      hashlib.sha1(body).hexdigest())] += 1
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port,
                                                      timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("host", "connection", "keep-alive")}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                except OSError:
                    self.send_error(502)
                    with proxy.lock:
                        proxy.statuses[502] += 1
                    return
                finally:
                    upstream.close()
                with proxy.lock:
                    proxy.statuses[answer.status] += 1
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                           "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def count(self, action):
        """Run ``action()`` and return how many requests it sent through the proxy."""
        before = len(self.requests)
        action()
        return len(self.requests) - before
