"""One HTTP POST with a total deadline: connecting (the DNS lookup included), sending, the response's headers and its body
together take at most ``timeout`` seconds, however slowly the server dribbles bytes.

Redirects are not followed (a key must never be carried to another host), and https goes through
``$HTTPS_PROXY`` when one is set for the host (a CONNECT tunnel; TLS stays end to end).

Examples:
    >>> try:
    ...     post("http://127.0.0.1:9/v1/chat/completions", b"{}", {}, timeout=1)
    ... except OSError as exc:          # nothing listens on port 9 here
    ...     print(type(exc).__name__)
    ConnectionRefusedError
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.request
from urllib.parse import urlsplit

MAX_BYTES = 16 * 2**20


class DeadlineExceeded(TimeoutError):
    """The request did not finish within its deadline."""


class TooLarge(OSError):
    """The response body is larger than :data:`MAX_BYTES`."""


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host, port = parts.hostname or "", parts.port
    if parts.scheme != "https":
        return http.client.HTTPConnection(host, port, timeout=timeout), path
    context = ssl.create_default_context()
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        conn = http.client.HTTPSConnection(p.hostname or "", p.port or 8080, timeout=timeout,
                                           context=context)
        conn.set_tunnel(host, port or 443)
        return conn, path
    return http.client.HTTPSConnection(host, port, timeout=timeout, context=context), path


def _connect(conn: http.client.HTTPConnection, deadline: float) -> None:
    """``conn.connect()`` by ``deadline``, the DNS lookup included: ``getaddrinfo`` takes no timeout,
    so the connection is made in a helper thread; one still stuck at the deadline is abandoned
    (it closes its socket if it ever connects) and :class:`DeadlineExceeded` is raised."""
    done, abandoned = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            conn.connect()
            if abandoned.is_set():
                conn.close()
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="whylm-connect", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        abandoned.set()
        raise DeadlineExceeded()
    if failure:
        raise failure[0]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST ``body`` to ``url`` and read the whole answer within ``timeout`` seconds in total.

    Returns:
        (HTTP status, response body). Redirects come back as their 3xx status, unfollowed.

    Raises:
        DeadlineExceeded: the deadline passed (at any stage); OSError or
        http.client.HTTPException: the connection failed; TooLarge: a body over 16 MiB.

    Examples:
        >>> post("http://127.0.0.1:9/v1/chat/completions", b"{}", {}, timeout=1)
        Traceback (most recent call last):
        ...
        ConnectionRefusedError: [Errno 111] Connection refused
    """
    deadline = time.monotonic() + timeout
    conn, path = _connection(url, timeout)
    expired = threading.Event()

    def cut() -> None:  # unblocks a recv() that a dribbling server keeps alive
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, cut)
    timer.daemon = True
    timer.start()
    try:
        _connect(conn, deadline)
        if expired.is_set():
            raise DeadlineExceeded()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        chunks, size = [], 0
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BYTES:
                raise TooLarge(f"answer larger than {MAX_BYTES // 2**20} MiB")
            chunks.append(chunk)
            if time.monotonic() >= deadline:
                raise DeadlineExceeded()
        if expired.is_set():
            raise DeadlineExceeded()
        return resp.status, b"".join(chunks)
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, (DeadlineExceeded, TooLarge)):
            raise
        if expired.is_set() or time.monotonic() >= deadline:
            raise DeadlineExceeded() from None
        raise
    finally:
        timer.cancel()
        conn.close()
