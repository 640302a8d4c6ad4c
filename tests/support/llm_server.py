"""A real HTTP server on 127.0.0.1 (port 0, in a thread) for the LLM backend tests: each request is
recorded (body and headers) and answered by a handler function the test supplies."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator


def answer(content: str, logprobs: list[tuple[str, float]] | None = None) -> dict[str, Any]:
    """A chat-completions answer; ``logprobs``: (token, logprob) of the first answer token's top list,
    the first pair being the token actually generated."""
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": logprobs[0][0], "logprob": logprobs[0][1],
                                           "top_logprobs": [{"token": t, "logprob": lp} for t, lp in logprobs]}]}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


class Recorder:
    """What the server saw: request bodies and headers, in order."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []


def send(handler: BaseHTTPRequestHandler, status: int, payload: bytes | dict,
         headers: dict[str, str] | None = None) -> None:
    """Write a complete response."""
    data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    handler.send_response(status)
    for k, v in (headers or {"Content-Type": "application/json"}).items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextlib.contextmanager
def serve(respond: Callable[[BaseHTTPRequestHandler, dict, Recorder], None]) -> Iterator[tuple[str, Recorder]]:
    """Serve ``respond(handler, body, recorder)`` for every POST; yields (base URL ``.../v1``, recorder)."""
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw) if raw else {}
            rec.requests.append(body)
            rec.headers.append({k.lower(): v for k, v in self.headers.items()})
            try:
                respond(self, body, rec)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a deadline test)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", rec
    finally:
        httpd.shutdown()
        httpd.server_close()
