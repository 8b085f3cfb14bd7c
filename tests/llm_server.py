"""A small OpenAI-compatible chat-completions server on loopback, for the tests.

It records every request and answers from a script: a valid finding, any text, a JSON object
that breaks the schema, an HTTP status with headers (429 with Retry-After, 500, 400), or a
slow answer. ``GET /v1/models`` lists ``models``, and answers 401 without ``api_key`` when
one is set. Only 127.0.0.1, ever.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackHTTPServer, QuietHandler


def finding_json(**overrides: Any) -> dict[str, Any]:
    """A valid answer (a Diagnosis), with fields replaced as given."""
    answer: dict[str, Any] = {
        "root_cause": "orders.parse_quantity passes the raw query value to int(); 'n/a' reached it",
        "confidence": 0.82,
        "category": "bad_input",
        "severity": "medium",
        "suggested_fix": "Validate the quantity before converting it, and answer 400.",
        "fix_patch": None,
        "fix_kind": "guard",
        "evidence": [
            {
                "location": "orders.parse_quantity (orders.py:12)",
                "line": "return int(text)",
                "note": "the raw text goes to int()",
            }
        ],
    }
    answer.update(overrides)
    return answer


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    content: str | None = None  # the assistant message's text, for a 200
    body: str | None = None  # the raw body instead, for any status
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0  # seconds between the body's bytes: slow, but never silent
    usage: tuple[int, int] | None = (120, 40)
    model: str = "test-model-1"

    @classmethod
    def finding(cls, **overrides: Any) -> Reply:
        """A 200 whose content is a valid finding as JSON."""
        return cls(content=json.dumps(finding_json(**overrides)))

    @classmethod
    def error(cls, status: int, **headers: str) -> Reply:
        """An HTTP error with an OpenAI-style error body."""
        body = json.dumps({"error": {"message": f"status {status}", "type": "test"}})
        return cls(
            status=status, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )


class FakeLLM:
    """The server. ``script`` is consumed first; then ``default`` answers every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Reply] = []
        self.default = Reply.finding()
        self.in_flight = 0
        self.max_in_flight = 0
        # response_format types taken (None: any); others are answered format_rejection.
        # reject_response_format: no response_format at all is taken.
        self.reject_response_format = False
        self.response_formats: tuple[str, ...] | None = None
        self.format_rejection = Reply(
            status=400,
            body=json.dumps({"error": {"message": "response_format is not supported"}}),
        )
        # GET {base}/models: the models listed, and the key it wants (None: any or none).
        self.models = ["test-model-1"]
        self.api_key: str | None = None
        self.model_requests: list[dict[str, Any]] = []
        self.received = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                reply = server._take(self, raw)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    server._answer(self, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout): fine
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def do_GET(self) -> None:
                server._list_models(self)

        self._http = LoopbackHTTPServer(Handler)

    @property
    def url(self) -> str:
        """The base URL, as set in ``MENDLINE_LLM_BASE_URL``."""
        return f"{self._http.base}/v1"

    def start(self) -> FakeLLM:
        self._http.start()
        return self

    def close(self) -> None:
        self._http.close()

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies received, in order."""
        return [r["json"] for r in self.requests]

    def _take(self, handler: BaseHTTPRequestHandler, raw: bytes) -> Reply:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(
                {
                    "path": handler.path,
                    "headers": {k.lower(): v for k, v in handler.headers.items()},
                    "json": body,
                    "raw": raw.decode("utf-8", "replace"),
                }
            )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self._rejects_format(body):
                reply = self.format_rejection
            else:
                reply = self.script.pop(0) if self.script else self.default
        self.received.set()
        return reply

    def like_llama_cpp_python(self) -> FakeLLM:
        """Answer as llama-cpp-python's server does: response_format json_object (with or
        without a schema) or text, and json_schema with HTTP 500 naming response_format."""
        self.response_formats = ("text", "json_object")
        detail = [
            {
                "type": "literal_error",
                "loc": ["body", "response_format", "type"],
                "msg": "Input should be 'text' or 'json_object'",
                "input": "json_schema",
                "ctx": {"expected": "'text' or 'json_object'"},
            }
        ]
        self.format_rejection = Reply(
            status=500,
            body=json.dumps({"error": {"message": str(detail), "type": "internal_server_error"}}),
        )
        return self

    def _rejects_format(self, body: Any) -> bool:
        if not isinstance(body, dict) or "response_format" not in body:
            return False
        if self.reject_response_format:
            return True
        kind = (body["response_format"] or {}).get("type")
        return self.response_formats is not None and kind not in self.response_formats

    def _list_models(self, handler: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.model_requests.append({"path": handler.path, "headers": headers})
        path = handler.path.split("?", 1)[0]
        keys = {headers.get("authorization", "").removeprefix("Bearer "), headers.get("api-key")}
        if path != "/v1/models":
            reply = Reply.error(404)
        elif self.api_key is not None and self.api_key not in keys:
            reply = Reply.error(401)
        else:
            listing = {
                "object": "list",
                "data": [{"id": m, "object": "model"} for m in self.models],
            }
            reply = Reply(body=json.dumps(listing))
        self._answer(handler, reply)

    def _answer(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.body is not None:
            payload = reply.body.encode()
        else:
            document: dict[str, Any] = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": reply.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content or ""},
                        "finish_reason": "stop",
                    }
                ],
            }
            if reply.usage is not None:
                document["usage"] = {
                    "prompt_tokens": reply.usage[0],
                    "completion_tokens": reply.usage[1],
                    "total_tokens": sum(reply.usage),
                }
            payload = json.dumps(document).encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if not reply.trickle:
            handler.wfile.write(payload)
            return
        for byte in payload:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(reply.trickle)


@contextmanager
def fake_llm() -> Iterator[FakeLLM]:
    """A running FakeLLM, closed afterwards."""
    server = FakeLLM().start()
    try:
        yield server
    finally:
        server.close()
