"""One review comment per pull request: made the first time, edited in place after, found
again by the marker that starts it (GitHub issue comments, GitLab merge request notes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from mendline.schemas.errors import ForgeError
from mendline.sinks.forges._api import ForgeAPI, _bad, _call, _client, _url
from mendline.sinks.forges._review_markdown import REVIEW_MARKER

__all__ = ["COMMENT_LIMITS", "post_review_comment"]

#: The longest comment body each forge takes, in characters.
COMMENT_LIMITS = {"github": 65_536, "gitlab": 1_000_000}
_PER_PAGE = 100
_PAGES = 500  # a server that always has a next page cannot keep us reading


async def post_review_comment(
    api: ForgeAPI,
    number: int,
    body: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """Make or update the review comment on pull request (merge request) ``number``; return
    its URL (GitHub's ``html_url``; on GitLab the merge request's page and ``#note_<id>``).

    Ours is the comment whose body starts with REVIEW_MARKER (``body`` gets it when it does
    not start with it) and that the token's own account wrote: anyone can write the marker,
    and a comment of theirs must never be edited (nor block ours). The account is the
    token's user (GitHub's and GitLab's ``GET /user``); a GitHub Actions or GitHub App token
    has no user there, and its comments are then those of a bot (``user.type`` Bot), which
    no person's account can write as. A quote of the marker in a reply starts with ``>``.
    When several are ours (two runs at once), the oldest is edited: the one made first,
    which every later run finds too, so no run adds another. Other comments are never
    touched.

    Raises ForgeError: ``too_long`` when the body is over the forge's limit (cut it with
    review_markdown's ``limit``; nothing is sent), ``http_<status>`` (retriable for 408,
    429 and 5xx), ``timeout``, ``unreachable``, ``bad_response``."""
    if not body.lstrip().startswith(REVIEW_MARKER):
        body = f"{REVIEW_MARKER}\n{body}"
    limit = COMMENT_LIMITS[api.kind]
    if len(body) > limit:
        raise ForgeError(
            f"the review comment is {len(body):,} characters; {api.name} takes {limit:,}",
            code="too_long",
            retriable=False,
            hint="make it with review_markdown(limit=...) under the forge's limit",
        )
    async with _client(api, transport) as client:
        if api.kind == "github":
            return await _github(client, api, number, body)
        return await _gitlab(client, api, number, body)


def _marked(item: Any) -> bool:
    if not isinstance(item, dict) or item.get("system"):  # GitLab's "added 1 commit"
        return False
    body = item.get("body")
    return isinstance(body, str) and body.lstrip().startswith(REVIEW_MARKER)


def _github_ours(login: str | None) -> Callable[[Any], bool]:
    """Whether a marked comment is by ``login`` (None: by a bot, see post_review_comment)."""

    def ours(item: Any) -> bool:
        user = item.get("user") if _marked(item) else None
        if not isinstance(user, dict):
            return False
        return user.get("login") == login if login is not None else user.get("type") == "Bot"

    return ours


def _gitlab_ours(user_id: int) -> Callable[[Any], bool]:
    """Whether a marked note is by the user whose id is ``user_id``."""

    def ours(item: Any) -> bool:
        author = item.get("author") if _marked(item) else None
        return isinstance(author, dict) and author.get("id") == user_id

    return ours


async def _github_login(client: httpx.AsyncClient, api: ForgeAPI) -> str | None:
    """The token's user's login; None for an Actions or App token (no user: 403)."""
    answer = await _call(client, api, "GET", "/user", accept=(403,))
    if answer.status_code == 403:
        return None
    login = _field(api, answer, "login")
    if not isinstance(login, str):
        raise _bad(api, "a user without a login")
    return login


async def _gitlab_user(client: httpx.AsyncClient, api: ForgeAPI) -> int:
    """The token's user's id (a project or group access token has its bot user)."""
    user_id = _field(api, await _call(client, api, "GET", "/user"), "id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise _bad(api, "a user without an id")
    return user_id


def _field(api: ForgeAPI, response: httpx.Response, key: str) -> Any:
    try:
        answer = response.json()
    except ValueError as exc:
        raise _bad(api, "a user that is not JSON") from exc
    return answer.get(key) if isinstance(answer, dict) else None


def _items(api: ForgeAPI, response: httpx.Response) -> list[Any]:
    try:
        items = response.json()
    except ValueError as exc:
        raise _bad(api, "comments that are not JSON") from exc
    if not isinstance(items, list):
        raise _bad(api, "comments that are not a list")
    return items


def _id(api: ForgeAPI, item: Any) -> int:
    found = item.get("id") if isinstance(item, dict) else None
    if not isinstance(found, int) or isinstance(found, bool):
        raise _bad(api, "a comment without an id")
    return found


def _same_server(api: ForgeAPI, url: str) -> str:
    """``url`` when it is on the API's own server: the token goes nowhere else."""
    wanted, got = urlsplit(api.api_url), urlsplit(url)
    if (got.scheme, got.netloc) != (wanted.scheme, wanted.netloc):
        raise _bad(api, "a next page on another server")
    return url


async def _github(client: httpx.AsyncClient, api: ForgeAPI, number: int, body: str) -> str:
    owner, _, repo = api.project.partition("/")
    issues = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}/issues"
    ours = _github_ours(await _github_login(client, api))
    found = await _github_find(client, api, f"{issues}/{number}/comments", ours)
    if found is None:
        made = await _call(client, api, "POST", f"{issues}/{number}/comments", json={"body": body})
        return _url(api, made, "html_url")
    edited = await _call(client, api, "PATCH", f"{issues}/comments/{found}", json={"body": body})
    return _url(api, edited, "html_url")


async def _github_find(
    client: httpx.AsyncClient, api: ForgeAPI, path: str, ours: Callable[[Any], bool]
) -> int | None:
    """Our comment's id, from the oldest comment on (GitHub lists them oldest first,
    following the Link header's next page)."""
    url: str = path
    params: dict[str, str] | None = {"per_page": str(_PER_PAGE)}
    for _ in range(_PAGES):
        response = await _call(client, api, "GET", url, params=params)
        for item in _items(api, response):
            if ours(item):
                return _id(api, item)
        following = response.links.get("next", {}).get("url")
        if not following:
            return None
        url, params = _same_server(api, following), None
    raise _bad(api, f"more than {_PAGES} pages of comments")


async def _gitlab(client: httpx.AsyncClient, api: ForgeAPI, number: int, body: str) -> str:
    request = f"/projects/{quote(api.project, safe='')}/merge_requests/{number}"
    page = await _call(client, api, "GET", request)
    try:
        web_url: str | None = _url(api, page, "web_url")
    except ForgeError:
        web_url = None  # the note's API URL will do
    ours = _gitlab_ours(await _gitlab_user(client, api))
    found = await _gitlab_find(client, api, f"{request}/notes", ours)
    if found is None:
        answer = await _call(client, api, "POST", f"{request}/notes", json={"body": body})
    else:
        answer = await _call(client, api, "PUT", f"{request}/notes/{found}", json={"body": body})
    try:
        note = _id(api, answer.json())
    except ValueError as exc:
        raise _bad(api, "a note that is not JSON") from exc
    if web_url:
        return f"{web_url}#note_{note}"
    return f"{api.api_url.rstrip('/')}{request}/notes/{note}"


async def _gitlab_find(
    client: httpx.AsyncClient, api: ForgeAPI, path: str, ours: Callable[[Any], bool]
) -> int | None:
    """Our note's id, from the oldest note on (asked for in that order, following
    X-Next-Page)."""
    params = {"per_page": str(_PER_PAGE), "sort": "asc", "order_by": "created_at", "page": "1"}
    for _ in range(_PAGES):
        response = await _call(client, api, "GET", path, params=params)
        for item in _items(api, response):
            if ours(item):
                return _id(api, item)
        following = response.headers.get("x-next-page", "").strip()
        if not following:
            return None
        if not following.isdigit() or int(following) <= int(params["page"]):
            raise _bad(api, "a next page that does not follow")
        params["page"] = following
    raise _bad(api, f"more than {_PAGES} pages of notes")
