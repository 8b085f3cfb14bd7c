"""Where ``mendline review`` reads production from when CI has no database: the dashboard's
JSON API (``GET /api/v1/review/context``) with an API token."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from mendline.schemas.errors import ServiceError
from mendline.schemas.http import retriable_status, retry_after
from mendline.schemas.printable import printable
from mendline.schemas.redaction import redact_url
from mendline.schemas.review import IssueRecord, LearnedRule

__all__ = ["MOST_ANSWER_BYTES", "DashboardProductionSource"]

#: The largest answer read (300 issues with their frames fit many times over).
MOST_ANSWER_BYTES = 32 * 1024 * 1024
_PATH = "/api/v1/review/context"
_FILES_PER_CALL = 200  # what the API takes in one call
_MOST_ISSUES = 300


class _Answer(TypedDict):
    issues: list[IssueRecord]
    rules: list[LearnedRule]


_ANSWER = TypeAdapter(_Answer)
_Linked = TypeVar("_Linked", IssueRecord, LearnedRule)


class DashboardProductionSource:
    """``schemas.review.ProductionSource`` over the dashboard at ``base_url``
    (``https://mendline.example.com``), with an API token of any role sent as
    ``Authorization: Bearer``; the token is never shown. An issue or rule without a link
    (the dashboard knows no public URL) links to its page under ``base_url``.

    Raises ServiceError: ``timeout``, ``unreachable``, ``http_<status>`` (retriable for 408,
    429 and 5xx), ``bad_response`` (not the JSON the API answers, or too large)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._transport = transport
        self._rules: list[LearnedRule] | None = None

    def __repr__(self) -> str:
        return f"DashboardProductionSource({self._shown_url!r})"

    async def issues(
        self, file_names: Sequence[str], *, resolved_within_days: int
    ) -> list[IssueRecord]:
        """The issues of ``file_names`` (asked for 200 at a time), the most recently seen
        first, at most 300; the rules of the same answer are kept for ``learned_rules``."""
        names = sorted(set(file_names))
        found: dict[int, IssueRecord] = {}
        for start in range(0, len(names), _FILES_PER_CALL):
            answer = await self._get(names[start : start + _FILES_PER_CALL], resolved_within_days)
            for record in answer["issues"]:
                found.setdefault(record.issue_id, record)
            self._rules = answer["rules"]
        ordered = sorted(found.values(), key=lambda r: (r.last_seen, r.issue_id), reverse=True)
        return ordered[:_MOST_ISSUES]

    async def learned_rules(self) -> list[LearnedRule]:
        """The learned rules in effect (those of the last answer, else asked for now)."""
        if self._rules is None:
            self._rules = (await self._get([], 0))["rules"]
        return list(self._rules)

    async def _get(self, names: Sequence[str], days: int) -> _Answer:
        params: list[tuple[str, str]] = [("file", name) for name in names]
        params.append(("resolved_within_days", str(max(0, days))))
        body = await self._call(params)
        try:
            answer = _ANSWER.validate_json(body)
        except ValidationError as exc:
            where = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "the answer"
            raise self._bad(f"{printable(where)[:100]} is not what the API answers") from exc
        times = [t for r in answer["issues"] for t in (r.last_seen, r.resolved_at)]
        times += [t for r in answer["rules"] for t in (r.created_at, r.disabled_at)]
        if any(t is not None and t.utcoffset() is None for t in times):
            raise self._bad("a time without its offset")
        answer["issues"] = [self._linked(r) for r in answer["issues"]]
        answer["rules"] = [self._linked(r) for r in answer["rules"]]
        return answer

    async def _call(self, params: list[tuple[str, str]]) -> bytes:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with (
                asyncio.timeout(self.timeout),  # httpx's timeout is per phase
                httpx.AsyncClient(
                    base_url=self.base_url,
                    timeout=httpx.Timeout(self.timeout),
                    transport=self._transport,
                ) as client,
                client.stream("GET", _PATH, params=tuple(params), headers=headers) as response,
            ):
                if response.status_code != 200:
                    await response.aread()
                    raise self._error(response)
                return await self._read(response)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise ServiceError(
                f"the dashboard at {self._shown_url} did not answer in time",
                code="timeout",
                retriable=True,
            ) from exc
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"cannot reach the dashboard at {self._shown_url}: {type(exc).__name__}",
                code="unreachable",
                retriable=True,
            ) from exc

    async def _read(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MOST_ANSWER_BYTES:
                raise self._bad(f"an answer over {MOST_ANSWER_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _error(self, response: httpx.Response) -> ServiceError:
        status = response.status_code
        hint = None
        if status in (401, 403):
            hint = "give a valid API token of the dashboard (`mendline tokens create`)"
        return ServiceError(
            f"the dashboard at {self._shown_url} answered HTTP {status}: {self._message(response)}",
            code=f"http_{status}",
            retriable=retriable_status(status),
            status=status,
            retry_after=retry_after(response.headers.get("retry-after")),
            hint=hint,
        )

    def _bad(self, what: str) -> ServiceError:
        return ServiceError(
            f"the dashboard at {self._shown_url} answered oddly: {what}",
            code="bad_response",
            retriable=False,
        )

    def _linked(self, item: _Linked) -> _Linked:
        if item.link is not None:
            return item
        return dataclasses.replace(item, link=f"{self.base_url}/issues/{item.issue_id}")

    def _message(self, response: httpx.Response) -> str:
        """The API's error message, else the start of what it answered, on one line; the
        token filtered out should a server echo it."""
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            answer = answer["error"].get("message") or answer["error"]
        text = " ".join(str(answer).split())
        if self._token:
            text = text.replace(self._token, "[Filtered]")
        return printable(text)[:300]

    @property
    def _shown_url(self) -> str:
        return printable(redact_url(self.base_url))
