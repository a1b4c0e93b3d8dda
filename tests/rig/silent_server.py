"""A loopback TCP server that accepts connections, reads requests and never answers.

It stands for a hung Orthanc: the client's request is delivered, no answer ever comes. It
counts the HTTP requests it received (their request lines), so a test can prove that a POST
was sent exactly once, or that a refused argument never reached the network.
"""
from __future__ import annotations

import socket
import threading


class SilentServer:
    """``with SilentServer() as s:`` then point a Connection at ``s.url``; ``s.requests``."""

    def __init__(self):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = []  # request lines, e.g. "POST /instances HTTP/1.1"
        self._lock = threading.Lock()
        self._sockets = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:  # timeout, or the listener was closed by stop()
                continue
            with self._lock:
                self._sockets.append(sock)
            threading.Thread(target=self._read, args=(sock,), daemon=True).start()

    def _read(self, sock):
        buffer = b""
        try:
            while not self._stopped.is_set():
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n" in buffer:  # a request line starts each request on a socket
                    line, buffer = buffer.split(b"\r\n", 1)
                    if line.endswith(b" HTTP/1.1") or line.endswith(b" HTTP/1.0"):
                        with self._lock:
                            self.requests.append(line.decode("latin-1"))
                buffer = buffer[-8192:]
        except OSError:
            return

    def stop(self):
        self._stopped.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
