"""Loopback stand-ins for the forges' far ends, for the tests.

``FakeGitHub`` speaks GitHub's pulls endpoints (``POST`` and ``GET
/repos/{owner}/{repo}/pulls``), ``FakeGitLab`` GitLab's merge requests (``POST`` and ``GET
/api/v4/projects/{id}/merge_requests``), each checking its token and answering 422 / 409 for
a branch that has one open already; ``FakeGitRemote`` is a git smart-HTTP remote that records
what git sends and refuses it. Every request is recorded; a script answers first (a 5xx, a
401...). Only 127.0.0.1, ever.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.channel_servers import Reply, send_reply
from tests.loopback import LoopbackHTTPServer, QuietHandler

__all__ = ["FakeGitHub", "FakeGitLab", "FakeGitRemote", "Received", "fake_forge"]


@dataclass
class Received:
    """One request as received: method, raw path, query, headers (lower-cased), JSON body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class _Forge:
    """A loopback HTTP server that records every request and answers from ``script`` first,
    then with ``answer``."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[Reply] = []
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                parts = urlsplit(self.path)
                request = Received(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw.strip().startswith("{") else raw,
                )
                with server._lock:
                    server.requests.append(request)
                    reply = server.script.pop(0) if server.script else server.answer(request)
                send_reply(self, reply)

            do_GET = do_POST = _serve

        self._http = LoopbackHTTPServer(Handler)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self._http.base

    def answer(self, request: Received) -> Reply:
        raise NotImplementedError

    def start(self) -> None:
        self._http.start()

    def close(self) -> None:
        self._http.close()


def _json(status: int, value: Any) -> Reply:
    return Reply(status, json.dumps(value))


class FakeGitHub(_Forge):
    """GitHub's REST API for pull requests: the API's base URL is ``base``."""

    def __init__(self, token: str = "ghp-test-token") -> None:
        super().__init__()
        self.token = token
        self.pulls: list[dict[str, Any]] = []

    def answer(self, request: Received) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _json(401, {"message": "Bad credentials"})
        owner, repo = request.path.split("/")[2:4]
        if request.method == "GET":
            head = request.query.get("head", "")
            found = [p for p in self.pulls if f"{owner}:{p['head']['ref']}" == head]
            return _json(200, found if request.query.get("state") == "open" else [])
        body = request.body
        if any(p["head"]["ref"] == body.get("head") for p in self.pulls):
            error = {"message": f"A pull request already exists for {owner}:{body['head']}."}
            return _json(422, {"message": "Validation Failed", "errors": [error]})
        number = len(self.pulls) + 1
        pull = {
            "number": number,
            "html_url": f"https://github.example/{owner}/{repo}/pull/{number}",
            "head": {"ref": body["head"]},
            "base": {"ref": body["base"]},
            "title": body["title"],
            "body": body["body"],
        }
        self.pulls.append(pull)
        return _json(201, pull)


class FakeGitLab(_Forge):
    """GitLab's REST API for merge requests: the API's base URL is ``api_url``."""

    def __init__(self, token: str = "glpat-test-token") -> None:
        super().__init__()
        self.token = token
        self.merge_requests: list[dict[str, Any]] = []

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v4``."""
        return f"{self.base}/api/v4"

    def answer(self, request: Received) -> Reply:
        if request.headers.get("private-token") != self.token:
            return _json(401, {"message": "401 Unauthorized"})
        project = unquote(request.path.split("/")[4])
        if request.method == "GET":
            branch = request.query.get("source_branch")
            found = [m for m in self.merge_requests if m["source_branch"] == branch]
            return _json(200, found if request.query.get("state") == "opened" else [])
        body = request.body
        if any(m["source_branch"] == body.get("source_branch") for m in self.merge_requests):
            message = "Another open merge request already exists for this source branch: !1"
            return _json(409, {"message": [message]})
        iid = len(self.merge_requests) + 1
        made = {
            "iid": iid,
            "web_url": f"https://gitlab.example/{project}/-/merge_requests/{iid}",
            **body,
        }
        self.merge_requests.append(made)
        return _json(201, made)


class FakeGitRemote(_Forge):
    """A git remote over HTTP (``url``) that records what git sends and answers 500."""

    @property
    def url(self) -> str:
        """The remote's URL."""
        return f"{self.base}/owner/repo.git"

    def answer(self, request: Received) -> Reply:
        return Reply.error(500, "not today")


_F = TypeVar("_F", bound=_Forge)


@contextmanager
def fake_forge(server: _F) -> Iterator[_F]:
    """``server`` running, closed afterwards."""
    server.start()
    try:
        yield server
    finally:
        server.close()
