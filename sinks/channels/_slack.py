"""Slack: an incoming webhook, or a bot token (post, update in place, reply in thread)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient
from slack_sdk.webhook.webhook_response import WebhookResponse

from mendline.schemas.alert import ChannelError, Notification, SlackReceiver
from mendline.schemas.errors import ConfigError
from mendline.schemas.http import retriable_status, retry_after
from mendline.sinks.channels._render import render_blocks, slack_text

__all__ = ["SlackChannel"]

_T = TypeVar("_T")

# Slack errors that say "later", not "never": https://docs.slack.dev/reference/methods/chat.postMessage
_RETRIABLE_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)
_ERROR_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # a webhook's error body: "channel_not_found"
_MAX_HOLD = 120.0  # a longer Retry-After still reaches the caller; the channel is held this long


class _Pacer:
    """At most one send per ``interval`` to each Slack channel, and none until a 429's
    Retry-After has passed. A key's lock is held for its sends only, so one slow Slack
    channel never delays another."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self._next: dict[str, float] = {}

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        async with self._locks.setdefault(key, asyncio.Lock()):
            wait = self._next.get(key, 0.0) - self._clock()
            if wait > 0:
                await self._sleep(wait)
            self._next[key] = self._clock() + self._interval
            yield

    def hold(self, key: str, seconds: float) -> None:
        until = self._clock() + min(seconds, _MAX_HOLD)
        self._next[key] = max(self._next.get(key, 0.0), until)


class SlackChannel:
    """Sends to one Slack receiver.

    With a bot token: ``new`` posts (the reference is ``{"channel", "ts"}``), ``update``
    edits that message with chat.update, ``repeat`` replies in its thread. With an incoming
    webhook, which cannot edit or thread, updates and repeats are new messages and the
    reference is empty. Sends to one Slack channel are spaced ``min_interval`` apart and
    held after a 429 until its Retry-After.
    """

    #: Sends the alert worker makes at once to this receiver: one. A Slack channel takes a
    #: message a second anyway, and an update goes to the id Slack gave the channel, which a
    #: restarted process cannot tell from its name: sent side by side, the two would be
    #: paced apart.
    sends_at_once = 1

    def __init__(
        self,
        receiver: SlackReceiver,
        *,
        webhook_url: str | None = None,
        bot_token: str | None = None,
        name: str = "slack",
        timeout: float = 10.0,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if bot_token and not receiver.channel:
            raise ConfigError(f"receiver {name!r}: a Slack bot token needs a channel")
        if not bot_token and not webhook_url:
            raise ConfigError(f"receiver {name!r}: Slack needs a webhook URL or a bot token")
        self.name = name
        self._receiver = receiver
        self._webhook_url = None if bot_token else webhook_url
        self._bot_token = bot_token
        self._timeout = timeout
        self._pacer = _Pacer(min_interval, clock, sleep)
        # The channel id Slack answers with ("C123") is the channel configured as "#alerts".
        self._aliases: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._webhook: AsyncWebhookClient | None = None
        self._closed = False

    async def send(self, notification: Notification) -> dict[str, str]:
        """Post, update or thread ``notification``; raise ChannelError if Slack refuses."""
        if self._closed:
            raise RuntimeError(f"the Slack channel {self.name!r} is closed")
        text, blocks = slack_text(notification), render_blocks(notification)
        if self._webhook_url is not None:
            await self._send_webhook(self._webhook_url, text, blocks)
            return {}
        return await self._send_bot(notification, text, blocks)

    async def aclose(self) -> None:
        """Close the HTTP session; idempotent."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send_webhook(self, url: str, text: str, blocks: list[dict[str, Any]]) -> None:
        # Retries are the caller's, with the delivery's backoff: none inside slack-sdk.
        client = self._webhook or AsyncWebhookClient(url, session=self._http(), retry_handlers=[])
        self._webhook = client

        async def post() -> WebhookResponse:
            response = await client.send(text=text, blocks=blocks)
            if response.status_code != 200:
                raise _webhook_error(response)
            return response

        await self._paced(url, post)

    async def _send_bot(
        self, notification: Notification, text: str, blocks: list[dict[str, Any]]
    ) -> dict[str, str]:
        client = self._web or AsyncWebClient(
            token=self._bot_token,
            base_url=self._receiver.api_url,
            session=self._http(),
            retry_handlers=[],
        )
        self._web = client
        previous = notification.previous or {}
        ts, channel = previous.get("ts"), previous.get("channel") or self._receiver.channel or ""
        digest = {"digest": str(len(notification.alerts))} if notification.is_digest else {}
        # An update of a digest would replace the other issues in it: it goes in the thread.
        if notification.mode == "update" and ts and "digest" not in previous:
            await self._paced(
                channel,
                lambda: client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks),
            )
            return {"channel": channel, "ts": ts}
        if notification.mode in ("update", "repeat") and ts:
            reply = await self._paced(
                channel,
                lambda: client.chat_postMessage(
                    channel=channel, thread_ts=ts, text=text, blocks=blocks
                ),
            )
            # "ts" stays the thread's first message, which later updates and replies refer to.
            return {"channel": channel, "ts": ts, "reply_ts": str(reply.get("ts", ""))}
        target = self._receiver.channel or ""
        posted = await self._paced(
            target, lambda: client.chat_postMessage(channel=target, text=text, blocks=blocks)
        )
        channel_id = str(posted.get("channel") or target)
        self._aliases[channel_id] = target
        return {"channel": channel_id, "ts": str(posted.get("ts", "")), **digest}

    async def _paced(self, channel: str, call: Callable[[], Awaitable[_T]]) -> _T:
        key = self._aliases.get(channel, channel)
        async with self._pacer.turn(key):
            try:
                with _translated():
                    async with asyncio.timeout(self._timeout):
                        return await call()
            except ChannelError as error:
                if error.status == 429 or error.retry_after is not None:
                    self._pacer.hold(key, error.retry_after or 1.0)
                raise

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session


@contextmanager
def _translated() -> Iterator[None]:
    """slack-sdk's and aiohttp's exceptions as ChannelError."""
    try:
        yield
    except SlackApiError as exc:
        raise _api_error(exc.response) from exc
    except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
        raise ChannelError("Slack did not answer in time", code="timeout", retriable=True) from exc
    except aiohttp.ClientError as exc:
        # The message of some aiohttp errors holds the URL, and a webhook's URL is a secret.
        raise ChannelError(
            f"cannot reach Slack ({type(exc).__name__})", code="unreachable", retriable=True
        ) from exc


def _failure(status: int | None, error: str | None, headers: Any) -> ChannelError:
    retriable = error in _RETRIABLE_ERRORS or (status is not None and retriable_status(status))
    code = f"slack_{error}" if error else f"http_{status}"
    return ChannelError(
        f"Slack answered HTTP {status}" + (f": {error}" if error else ""),
        code=code,
        retriable=retriable,
        status=status,
        retry_after=retry_after(headers.get("Retry-After")) if headers is not None else None,
    )


def _api_error(response: AsyncSlackResponse | aiohttp.ClientResponse) -> ChannelError:
    # An answer that is not JSON comes as aiohttp's response, with ``status`` instead.
    if isinstance(response, aiohttp.ClientResponse):
        return _failure(response.status, None, response.headers)
    data = response.data if isinstance(response.data, dict) else {}
    error = data.get("error")
    return _failure(
        response.status_code,
        error if isinstance(error, str) and _ERROR_NAME.fullmatch(error) else None,
        response.headers,
    )


def _webhook_error(response: WebhookResponse) -> ChannelError:
    body = (response.body or "").strip()
    return _failure(
        response.status_code, body if _ERROR_NAME.fullmatch(body) else None, response.headers
    )
