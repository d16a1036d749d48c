"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions API, so the `openai` SDK itself runs.

- POST /v1/chat/completions, non-streaming (JSON) and streaming (SSE `data:` chunks, a usage chunk, `[DONE]`).
- Scripted behaviour: `server.script([...])` queues one step per request (then the default answer):
    {"status": 429} / {"status": 500}       an error response
    {"delay": 0.3}                           wait before answering (with a short client timeout: a timeout)
    {"text": "..."}                          this answer
    {"fail_after_chunks": 2}                 a stream that breaks after 2 chunks (connection closed)
    {"usage": {...}}                         this `usage` object, verbatim (cache / reasoning details of a real
                                             provider body), in the JSON answer and in the stream's usage chunk
- Every request body is recorded (`server.requests`, `server.raw_bodies`), as it arrived on the socket.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_TEXT = "Likely cause: a regression in the login flow. Check the session service logs first."


class FakeOpenAI:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.raw_bodies: list[bytes] = []
        self.steps: list[dict] = []
        self.default_text = DEFAULT_TEXT
        self.default_delay = 0.0
        self.prompt_tokens = 120
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.raw_bodies.clear()
            self.steps.clear()
            self.default_text = DEFAULT_TEXT
            self.default_delay = 0.0
            self.prompt_tokens = 120

    def script(self, steps: list[dict]) -> None:
        with self.lock:
            self.steps.extend(steps)

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    def _next_step(self) -> dict:
        with self.lock:
            return self.steps.pop(0) if self.steps else {}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm plus the client's
            # delayed ACK stall every other response by ~40 ms on loopback.
            disable_nagle_algorithm = True

            def log_message(self, format, *args):  # keep test output quiet
                return

            def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw or b"{}")
                with fake.lock:
                    fake.raw_bodies.append(raw)
                    fake.requests.append(body)
                if self.path != "/v1/chat/completions":
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                step = fake._next_step()
                delay = step.get("delay", fake.default_delay)
                if delay:
                    time.sleep(delay)
                status = step.get("status")
                if status:
                    headers = {"Retry-After": "0"} if status == 429 else {}
                    self._json(status, {"error": {"message": f"scripted {status}", "type": "server_error"}}, headers)
                    return
                text = step.get("text", fake.default_text)
                completion_tokens = max(1, len(text.split()))
                usage = step.get("usage") or {
                    "prompt_tokens": fake.prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": fake.prompt_tokens + completion_tokens,
                }
                if body.get("stream"):
                    self._stream(body, text, usage, step)
                    return
                self._json(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "gpt-4o-mini"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": usage,
                    },
                )

            def _stream(self, body: dict, text: str, usage: dict, step: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                words = text.split(" ")
                pieces = [word + (" " if index < len(words) - 1 else "") for index, word in enumerate(words)]
                base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time())}
                base["model"] = body.get("model", "gpt-4o-mini")
                for index, piece in enumerate(pieces):
                    if step.get("fail_after_chunks") is not None and index >= step["fail_after_chunks"]:
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return
                    chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if step.get("chunk_delay"):
                        time.sleep(step["chunk_delay"])
                final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
                if (body.get("stream_options") or {}).get("include_usage"):
                    self.wfile.write(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler
