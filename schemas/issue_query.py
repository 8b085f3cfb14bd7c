"""What a list of issues or of an issue's events asks for: filters, a sort, a page size and
an opaque cursor to the next (or the previous) page, and the dashboard's search line read
into filters; shared by the CLI and the dashboard."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mendline.schemas.errors import ConfigError
from mendline.schemas.issue import ListStatus, parse_assignee

__all__ = [
    "ISSUE_SORTS",
    "MAX_PAGE",
    "SEARCH_KEYS",
    "TAB_COUNT_LIMIT",
    "EventCursor",
    "IssueCursor",
    "IssueQuery",
    "IssueSearch",
    "IssueSort",
    "like_pattern",
]

IssueSort = Literal["last_seen", "first_seen", "events", "events_1h", "trend"]
#: What issues may be ordered by, each descending (newest, most first): when last or first
#: seen, the events ever counted (``times_seen``), the events of the last hour, and the
#: trend: how many more events the last hour had than the hour before it (``events_1h``
#: minus the events of the 60 minutes before those; positive when the issue is rising now,
#: negative when it is dying down, 0 for a steady or a silent one).
ISSUE_SORTS: tuple[IssueSort, ...] = ("last_seen", "first_seen", "events", "events_1h", "trend")
#: The most rows one page may hold.
MAX_PAGE = 1000
#: The most issues the dashboard counts in a tab: past it, it says "more than" (a count
#: then costs no more than a few pages, however many issues there are).
TAB_COUNT_LIMIT = 1000
#: PostgreSQL's ``bigint``: the ids and counts a cursor may hold.
_BIGINT = range(-(2**63), 2**63)


def _encode(payload: list[object]) -> str:
    text = json.dumps(payload, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _moment(value: object) -> datetime:
    """The aware time a cursor holds; ValueError for another, or one out of UTC's range."""
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(value)
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(value) from None
    return moment


def _decode(token: str, what: str) -> list[object]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ConfigError(f"{token[:40]!r} is not a cursor of {what}") from None
    if not isinstance(value, list):
        raise ConfigError(f"{token[:40]!r} is not a cursor of {what}")
    return value


class IssueCursor(BaseModel):
    """Where a page of issues ended: the last row's sort value and id (the id breaks ties,
    so rows with equal values are neither skipped nor repeated). A ``backward`` cursor is
    where a page began, to the page before it (the dashboard's "previous" link)."""

    model_config = ConfigDict(frozen=True)

    sort: IssueSort
    value: datetime | int
    id: int
    backward: bool = False

    def token(self) -> str:
        """The cursor as an opaque URL-safe string."""
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        parts: list[object] = ["i", self.sort, value, self.id]
        return _encode([*parts, "back"] if self.backward else parts)

    @classmethod
    def parse(cls, token: str) -> IssueCursor:
        """The cursor ``token`` stands for; ConfigError when it is not one of issues."""
        parts = _decode(token, "issues")
        try:
            backward = len(parts) == 5 and parts[4] == "back"
            kind, sort, value, id_ = parts[:4] if backward else parts
            if kind != "i" or not isinstance(id_, int) or id_ not in _BIGINT:
                raise ValueError(kind)
            if sort in ("last_seen", "first_seen"):
                return cls(sort=sort, value=_moment(value), id=id_, backward=backward)
            if isinstance(value, bool) or not isinstance(value, int) or value not in _BIGINT:
                raise ValueError(value)
            if sort not in ISSUE_SORTS:
                raise ValueError(sort)
            return cls.model_validate(
                {"sort": sort, "value": value, "id": id_, "backward": backward}
            )
        except ValueError:  # pydantic's ValidationError is a ValueError too
            raise ConfigError(f"{token[:40]!r} is not a cursor of issues") from None


class EventCursor(BaseModel):
    """Where a page of an issue's events ended (newest first): the last event's time of
    receipt and its id."""

    model_config = ConfigDict(frozen=True)

    received_at: datetime
    event_id: str

    def token(self) -> str:
        """The cursor as an opaque URL-safe string."""
        return _encode(["e", self.received_at.isoformat(), self.event_id])

    @classmethod
    def parse(cls, token: str) -> EventCursor:
        """The cursor ``token`` stands for; ConfigError when it is not one of events."""
        parts = _decode(token, "events")
        try:
            kind, received_at, event_id = parts
            if kind != "e" or not isinstance(event_id, str):
                raise ValueError(kind)
            return cls(received_at=_moment(received_at), event_id=str(uuid.UUID(event_id)))
        except ValueError:
            raise ConfigError(f"{token[:40]!r} is not a cursor of events") from None


class IssueQuery(BaseModel):
    """Which issues, in which order, how many, from where: ``issues list`` and the
    dashboard's issue list. Every filter given must hold (they are joined with AND)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: ListStatus = "unresolved"
    service: str | None = None
    environment: str | None = None
    release: str | None = Field(
        default=None, description="the first or last release, or any stored event's"
    )
    tags: tuple[tuple[str, str], ...] = Field(
        default=(), description="(name, value) pairs that one stored event carries together"
    )
    text: str | None = Field(default=None, description="a substring of the title or culprit")
    assignee: str | None = Field(default=None, description="user:NAME or team:LABEL")
    first_seen_since: datetime | None = None
    last_seen_since: datetime | None = None
    sort: IssueSort = "last_seen"
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: IssueCursor | None = None

    @field_validator("assignee")
    @classmethod
    def _assignee(cls, value: str | None) -> str | None:
        if value is None:
            return None
        kind, name = parse_assignee(value)
        return f"{kind}:{name}"

    @field_validator("first_seen_since", "last_seen_since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("a time must say its time zone")
        return value

    @model_validator(mode="after")
    def _cursor_of_this_sort(self) -> IssueQuery:
        if self.cursor is not None and self.cursor.sort != self.sort:
            raise ValueError(
                f"the cursor is of a list sorted by {self.cursor.sort}, not by {self.sort}"
            )
        return self

    @property
    def status_filter(self) -> tuple[str, str | None]:
        """The status to match (``all``: every one but merged) and the substatus, if any:
        ``regressed`` and ``escalating`` are unresolved issues' substatuses."""
        if self.status in ("regressed", "escalating"):
            return "unresolved", self.status
        return self.status, None

    @property
    def tag_filter(self) -> dict[str, str] | None:
        """``tags`` as the one object a stored event's tags must contain; None when one tag
        is asked for with two values, which no event carries (the list is empty)."""
        wanted: dict[str, str] = {}
        for name, value in self.tags:
            if wanted.setdefault(name, value) != value:
                return None
        return wanted

    @property
    def text_pattern(self) -> str | None:
        """``text`` as an ILIKE pattern matching it anywhere (see ``like_pattern``)."""
        return None if self.text is None else f"%{like_pattern(self.text)}%"


def like_pattern(text: str) -> str:
    """``text`` with LIKE's wildcards (``%``, ``_``) and its escape character (``\\``)
    escaped, so it matches only itself."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: The keys of the search line that are filters of their own (``env`` is ``environment``,
#: ``assigned`` is ``assignee``); any other ``key:value`` is a tag.
SEARCH_KEYS: dict[str, str] = {
    "service": "service",
    "release": "release",
    "environment": "environment",
    "env": "environment",
    "assignee": "assignee",
    "assigned": "assignee",
}
_SEARCH_TOKEN = re.compile(
    r"""(?P<key>[A-Za-z_][\w.-]{0,199}):"""
    r"""(?:"(?P<quoted_value>(?:[^"\\]|\\.)*)"?|(?P<value>[^\s"]\S*))"""
    r"""|"(?P<quoted>(?:[^"\\]|\\.)*)"?|(?P<word>\S+)"""
)
_ESCAPED = re.compile(r"\\(.)")
_MAX_SEARCH = 1000


class IssueSearch(BaseModel):
    """The dashboard's search line read as Sentry's is: ``key:value`` tokens are filters
    (``service:``, ``release:``, ``environment:`` or ``env:``, ``assignee:`` or ``assigned:``;
    any other key is a tag an event carries, ``region:eu``), a value may be quoted
    (``browser:"Mobile Safari"``, a quote or a backslash in it escaped with a backslash:
    ``"say \\"hi\\""``), and every other word, or quoted text, is searched for in
    the title and the culprit (the words in their order, as one piece of text). Quote a word
    holding a colon to search for it as text (``"http://shop"``)."""

    model_config = ConfigDict(frozen=True)

    text: str | None = None
    service: str | None = None
    release: str | None = None
    environment: str | None = None
    assignee: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, line: str) -> IssueSearch:
        """The filters of the search ``line``; ConfigError for one that is too long or
        names a filter twice."""
        if len(line) > _MAX_SEARCH:
            raise ConfigError(f"a search has at most {_MAX_SEARCH} characters")
        words: list[str] = []
        fields: dict[str, str] = {}
        tags: list[tuple[str, str]] = []
        for token in _SEARCH_TOKEN.finditer(line):
            key = token.group("key")
            if key is None:
                quoted = token.group("quoted")
                words.append(_unquoted(quoted) if quoted is not None else token.group("word"))
                continue
            quoted = token.group("quoted_value")
            value = _unquoted(quoted) if quoted is not None else token.group("value")
            field = SEARCH_KEYS.get(key.lower())
            if field is None:
                if (key, value) not in tags:
                    tags.append((key, value))
            elif fields.setdefault(field, value) != value:
                raise ConfigError(f"the search asks for two values of {field}: give one")
        text = " ".join(word for word in words if word)
        return cls(text=text or None, tags=tuple(tags), **fields)

    def filters(self) -> dict[str, object]:
        """The IssueQuery fields it sets (those it leaves out are not in it)."""
        return self.model_dump(exclude_defaults=True)


def _unquoted(text: str) -> str:
    """A quoted search value without its escapes (``\\"`` is ``"``)."""
    return _ESCAPED.sub(r"\1", text)
