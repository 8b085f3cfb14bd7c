"""Loopback stand-ins for the forges' far ends, for the tests.

``FakeGitHub`` speaks GitHub's pulls endpoints (``POST`` and ``GET
/repos/{owner}/{repo}/pulls``) and its issue comments (``GET`` and ``POST
/repos/{owner}/{repo}/issues/{number}/comments``, paged by ``per_page`` and ``page`` with a
Link header; ``PATCH /repos/{owner}/{repo}/issues/comments/{id}``); ``FakeGitLab`` GitLab's
merge requests (``POST`` and ``GET /api/v4/projects/{id}/merge_requests``, ``GET
.../merge_requests/{iid}``) and their notes (``GET`` and ``POST .../merge_requests/{iid}/notes``,
paged with X-Next-Page, newest first unless ``sort=asc``; ``PUT .../notes/{id}``). Each checks
its token and answers 422 / 409 for a branch that has a pull request open already;
``FakeGitRemote`` is a git smart-HTTP remote that records what git sends and refuses it. Every
request is recorded; a script answers first (a 5xx, a 401...). Only 127.0.0.1, ever.
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

            do_GET = do_POST = do_PATCH = do_PUT = _serve

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


def _json(status: int, value: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(value), {k.replace("_", "-"): v for k, v in headers.items()})


def _page(request: Received, default: int, cap: int) -> tuple[int, int]:
    """The page asked for (from 1) and its size (at most ``cap``)."""
    size = min(int(request.query.get("per_page") or default), cap)
    return max(1, int(request.query.get("page") or 1)), size


#: Who an Actions token's comments are by on GitHub.
ACTIONS_BOT = "github-actions[bot]"
#: The GitLab token's user (a project access token's bot).
GITLAB_BOT = "project_7_bot"


def _user_id(username: str) -> int:
    """A GitLab user's id, the same for the same name."""
    return 100 + sum(ord(c) * (i + 1) for i, c in enumerate(username))


class FakeGitHub(_Forge):
    """GitHub's REST API for pull requests: the API's base URL is ``base``."""

    def __init__(self, token: str = "ghp-test-token", login: str | None = None) -> None:
        super().__init__()
        self.token = token
        #: The token's user (a personal token); None: an Actions or App token, whose
        #: ``GET /user`` is a 403 and whose comments are by ``github-actions[bot]``.
        self.login = login
        self.pulls: list[dict[str, Any]] = []
        #: Issue comments, oldest first, as GitHub lists them (``issue`` is the number).
        self.comments: list[dict[str, Any]] = []
        #: The largest page GitHub serves (100); a test makes it small to page sooner.
        self.per_page_cap = 100
        self._ids = iter(range(1001, 10**9))

    def comment(
        self, issue: int, body: str, login: str = "someone", kind: str = "User"
    ) -> dict[str, Any]:
        """A comment on pull request (issue) ``issue``, as if ``login`` (a ``kind``: User or
        Bot) wrote it."""
        comment_id = next(self._ids)
        made = {
            "id": comment_id,
            "issue": issue,
            "body": body,
            "user": {"login": login, "type": kind},
            "html_url": f"https://github.example/pull/{issue}#issuecomment-{comment_id}",
        }
        self.comments.append(made)
        return made

    def answer(self, request: Received) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _json(401, {"message": "Bad credentials"})
        if request.path == "/user":
            if self.login is None:
                return _json(403, {"message": "Resource not accessible by integration"})
            return _json(200, {"login": self.login, "type": "User"})
        parts = request.path.split("/")
        if parts[4:5] == ["issues"]:
            return self._issue_comments(request, parts[5:])
        return self._pulls(request, *parts[2:4])

    def _issue_comments(self, request: Received, rest: list[str]) -> Reply:
        if request.method == "PATCH" and rest[0] == "comments":
            found = [c for c in self.comments if str(c["id"]) == rest[1]]
            if not found:
                return _json(404, {"message": "Not Found"})
            found[0]["body"] = request.body["body"]
            return _json(200, found[0])
        issue = int(rest[0])
        if request.method == "POST":
            if self.login is None:
                return _json(201, self.comment(issue, request.body["body"], ACTIONS_BOT, "Bot"))
            return _json(201, self.comment(issue, request.body["body"], self.login))
        page, size = _page(request, 30, self.per_page_cap)
        on_issue = [c for c in self.comments if c["issue"] == issue]
        headers = {}
        if page * size < len(on_issue):
            following = f"{self.base}{request.path}?per_page={size}&page={page + 1}"
            headers["Link"] = f'<{following}>; rel="next"'
        return _json(200, on_issue[(page - 1) * size : page * size], **headers)

    def _pulls(self, request: Received, owner: str, repo: str) -> Reply:
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
        #: Merge request notes, oldest first (``iid`` is the merge request's).
        self.notes: list[dict[str, Any]] = []
        #: The largest page GitLab serves (100); a test makes it small to page sooner.
        self.per_page_cap = 100
        self._ids = iter(range(5001, 10**9))

    def note(self, iid: int, body: str, username: str = "someone", system: bool = False) -> Any:
        """A note on merge request ``iid``, as if ``username`` (or GitLab itself) wrote it;
        ``GITLAB_BOT`` is the token's own user."""
        made = {
            "id": next(self._ids),
            "iid": iid,
            "body": body,
            "author": {"id": _user_id(username), "username": username},
            "system": system,
        }
        self.notes.append(made)
        return made

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v4``."""
        return f"{self.base}/api/v4"

    def answer(self, request: Received) -> Reply:
        if request.headers.get("private-token") != self.token:
            return _json(401, {"message": "401 Unauthorized"})
        if request.path == "/api/v4/user":
            return _json(200, {"id": _user_id(GITLAB_BOT), "username": GITLAB_BOT})
        parts = request.path.split("/")
        project = unquote(parts[4])
        if len(parts) > 6:
            return self._merge_request(request, int(parts[6]), parts[7:])
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

    def _merge_request(self, request: Received, iid: int, rest: list[str]) -> Reply:
        found = [m for m in self.merge_requests if m["iid"] == iid]
        if not found:
            return _json(404, {"message": "404 Not found"})
        if not rest:
            return _json(200, found[0])
        if request.method == "PUT":
            notes = [n for n in self.notes if str(n["id"]) == rest[1] and n["iid"] == iid]
            if not notes:
                return _json(404, {"message": "404 Not found"})
            notes[0]["body"] = request.body["body"]
            return _json(200, notes[0])
        if request.method == "POST":
            return _json(201, self.note(iid, request.body["body"], GITLAB_BOT))
        page, size = _page(request, 20, self.per_page_cap)
        notes = [n for n in self.notes if n["iid"] == iid]
        if request.query.get("sort") != "asc":
            notes.reverse()  # GitLab's default order: the newest first
        following = str(page + 1) if page * size < len(notes) else ""
        return _json(200, notes[(page - 1) * size : page * size], X_Next_Page=following)


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
