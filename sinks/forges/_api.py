"""Pull requests on GitHub and merge requests on GitLab, through their REST APIs; one that
is open already for the branch is found and answered instead."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

from mendline.schemas.errors import ForgeError
from mendline.schemas.http import retriable_status, retry_after
from mendline.schemas.printable import printable

__all__ = ["ForgeAPI", "ForgeKind", "open_pull_request"]

ForgeKind = Literal["github", "gitlab"]
_NAMES = {"github": "GitHub", "gitlab": "GitLab"}
_MESSAGE = 300


@dataclass(frozen=True)
class ForgeAPI:
    """A forge's REST API for one project: ``api_url`` (``https://api.github.com``, or
    ``https://gitlab.example.com/api/v4``), the project (``owner/repo``, or GitLab's
    ``group/subgroup/project``) and a token allowed to open pull requests there."""

    kind: ForgeKind
    api_url: str
    project: str
    token: str = field(repr=False)
    timeout: float = 30.0

    @property
    def name(self) -> str:
        """GitHub or GitLab."""
        return _NAMES[self.kind]


async def open_pull_request(
    api: ForgeAPI,
    *,
    head: str,
    base: str,
    title: str,
    body: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """Open a pull (merge) request from branch ``head`` into ``base``; return its URL.

    When one is open already for ``head`` (GitHub answers 422, GitLab 409), its URL is
    returned. Raises ForgeError: ``http_<status>`` (retriable for 408, 429 and 5xx; not for
    401, 403, 404, 422), ``timeout``, ``unreachable`` or ``bad_response``."""
    async with _client(api, transport) as client:
        if api.kind == "github":
            return await _github(client, api, head, base, title, body)
        return await _gitlab(client, api, head, base, title, body)


def _client(api: ForgeAPI, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    """A client for ``api``: its base URL, its token's headers and its timeout."""
    return httpx.AsyncClient(
        base_url=api.api_url.rstrip("/"),
        headers=_headers(api),
        timeout=httpx.Timeout(api.timeout),
        transport=transport,
    )


def _headers(api: ForgeAPI) -> dict[str, str]:
    if api.kind == "github":
        return {
            "Authorization": f"Bearer {api.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    return {"PRIVATE-TOKEN": api.token}


async def _github(
    client: httpx.AsyncClient, api: ForgeAPI, head: str, base: str, title: str, body: str
) -> str:
    owner, _, repo = api.project.partition("/")
    pulls = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}/pulls"
    created = await _call(
        client, api, "POST", pulls, json=_json(title, head, base, body), accept=(422,)
    )
    if created.status_code == 422:  # "A pull request already exists for owner:branch"
        found = await _call(
            client, api, "GET", pulls, params={"head": f"{owner}:{head}", "state": "open"}
        )
        return _first_url(api, found, "html_url", refused=created)
    return _url(api, created, "html_url")


def _json(title: str, head: str, base: str, body: str) -> dict[str, str]:
    return {"title": title, "head": head, "base": base, "body": body}


async def _gitlab(
    client: httpx.AsyncClient, api: ForgeAPI, head: str, base: str, title: str, body: str
) -> str:
    requests = f"/projects/{quote(api.project, safe='')}/merge_requests"
    wanted = {"source_branch": head, "target_branch": base, "title": title, "description": body}
    created = await _call(client, api, "POST", requests, json=wanted, accept=(409,))
    if (
        created.status_code == 409
    ):  # "Another open merge request already exists for this source branch"
        found = await _call(
            client, api, "GET", requests, params={"source_branch": head, "state": "opened"}
        )
        return _first_url(api, found, "web_url", refused=created)
    return _url(api, created, "web_url")


async def _call(
    client: httpx.AsyncClient,
    api: ForgeAPI,
    method: str,
    path: str,
    *,
    accept: Collection[int] = (),
    **kwargs: Any,
) -> httpx.Response:
    """The answer, when it is a success or one of the statuses in ``accept`` (an "exists
    already"); else ForgeError."""
    try:
        async with asyncio.timeout(api.timeout):  # httpx's timeout is per phase
            response = await client.request(method, path, **kwargs)
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise ForgeError(
            f"{api.name} did not answer in time", code="timeout", retriable=True
        ) from exc
    except httpx.HTTPError as exc:
        raise ForgeError(
            f"cannot reach {api.name} at {api.api_url}: {type(exc).__name__}",
            code="unreachable",
            retriable=True,
        ) from exc
    status = response.status_code
    if 200 <= status < 300 or status in accept:
        return response
    raise _error(api, response)


def _error(api: ForgeAPI, response: httpx.Response) -> ForgeError:
    status = response.status_code
    return ForgeError(
        f"{api.name} answered HTTP {status}: {_message(response)}",
        code=f"http_{status}",
        retriable=retriable_status(status),
        status=status,
        retry_after=retry_after(response.headers.get("retry-after")),
    )


def _message(response: httpx.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    if isinstance(answer, dict):
        answer = answer.get("message") or answer.get("error") or answer
    return printable(str(answer))[:_MESSAGE].strip()


def _url(api: ForgeAPI, response: httpx.Response, key: str) -> str:
    try:
        url = response.json()[key]
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad(api, f"no {key} in its answer") from exc
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise _bad(api, f"{key} is not a URL")
    return url


def _first_url(api: ForgeAPI, found: httpx.Response, key: str, *, refused: httpx.Response) -> str:
    try:
        first = found.json()[0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise _error(api, refused) from None  # nothing open for it: the refusal was real
    return _url(api, httpx.Response(200, json=first), key)


def _bad(api: ForgeAPI, what: str) -> ForgeError:
    return ForgeError(f"{api.name} answered oddly: {what}", code="bad_response", retriable=True)
