"""The LLM analyser: any OpenAI-compatible chat-completions endpoint, with safe fallbacks."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from mendline.analyzers.breaker import CircuitBreaker
from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.analyzers.policy.alerts import finding_severity
from mendline.analyzers.rootcause.heuristic import HeuristicAnalyser
from mendline.analyzers.rootcause.metered import (
    BreakerOutcome,
    MeteredChat,
    OverBudget,
    failure_outcome,
    settle,
    tokens_or_estimate,
)
from mendline.analyzers.rootcause.prompt import answer_schema, build_prompt, correction
from mendline.analyzers.rootcause.risks import fix_risks
from mendline.schemas.errors import DatabaseError, LLMError
from mendline.schemas.finding import (
    Diagnosis,
    FallbackCode,
    Finding,
    IssueContext,
    Ledger,
    LLMCall,
)
from mendline.schemas.http import retriable_status, retry_after
from mendline.schemas.settings import Settings

__all__ = [
    "MODE_RETRY_AFTER",
    "RESPONSE_MODES",
    "ChatClient",
    "ChatReply",
    "LLMAnalyser",
    "MemoryLedger",
    "answer_document",
    "endpoint_auth",
    "mode_to_ask",
    "negotiated_mode",
    "next_mode",
    "parse_answer",
]

log = logging.getLogger("mendline.analyzers")

_JSON_BLOCK = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
# The fallback an LLMError leads to, by its code (ChatClient's forms; ``http_<status>`` is
# read from ``status``).
_FALLBACK_OF_CODE: dict[str, FallbackCode] = {
    "timeout": "llm_timeout",
    "unreachable": "llm_unreachable",
    "bad_response": "llm_bad_response",
}


@dataclass(frozen=True)
class ChatReply:
    """One chat completion: the answer's text, the model that wrote it, and its usage."""

    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


def endpoint_auth(
    api_key: str | None, api_key_header: str = "Authorization", api_version: str | None = None
) -> tuple[dict[str, str], dict[str, str] | None]:
    """The headers and query parameters that authenticate a call to an OpenAI-compatible
    endpoint: ``Authorization: Bearer <key>`` or Azure's ``api-key: <key>``, and Azure's
    ``api-version`` (None when there is none)."""
    headers: dict[str, str] = {}
    if api_key:
        if api_key_header == "Authorization":
            headers["Authorization"] = f"Bearer {api_key}"
        else:
            headers[api_key_header] = api_key
    return headers, ({"api-version": api_version} if api_version else None)


#: The structured-output modes a server may take, most exact first: OpenAI's ``json_schema``
#: (OpenAI, vLLM, recent llama.cpp and Ollama); ``json_object`` with a ``schema`` beside it
#: (llama-cpp-python, which constrains its output with it; others take a plain JSON object);
#: ``text``: no response_format, the schema written in the prompt.
RESPONSE_MODES: tuple[str, ...] = ("json_schema", "json_object", "text")
# The mode each endpoint (URL, model, the modes it may be asked with) is asked with, and when
# (time.monotonic) it was moved below the best mode: negotiated once, not on every call of every
# client.
_NEGOTIATED: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}
#: Seconds after which an endpoint moved below its best mode is asked in the best mode again:
#: one odd answer (a server restarted with other options, a proxy's error page) does not pin a
#: worse mode for the life of the process.
MODE_RETRY_AFTER = 3600.0
# The statuses an error about response_format comes with: 400 and 422 (OpenAI, vLLM, pydantic
# servers) and 500 (llama-cpp-python answers json_schema with HTTP 500 "Input should be 'text' or
# 'json_object'"). 401/403/408/429/502/503/504 are outages or refusals whatever the body says:
# they often echo the request, response_format included.
_FORMAT_STATUSES = frozenset({400, 422, 500})
# The body must say the field is rejected, next to its name (either order, within 120
# characters), not merely mention it: "CUDA out of memory while compiling json_schema grammar".
_FIELD = r"(?:response_format|json_schema|json_object)"
_REJECTED = (
    r"(?:input should be|unsupported|not supported|invalid|unknown|unrecognized|"
    r"extra (?:fields|inputs) (?:are )?not permitted)"
)
_ABOUT_FORMAT = re.compile(
    rf"{_REJECTED}.{{0,120}}?{_FIELD}|{_FIELD}.{{0,120}}?{_REJECTED}", re.IGNORECASE | re.DOTALL
)
# The longest string a schema sent with json_object may allow. llama-cpp-python turns that
# schema into a grammar that repeats a character rule up to maxLength times: 0.3.36 dies of a
# segmentation fault on the Finding's 2,000 and 20,000 (tried with SmolLM2), and is fine at
# 1,000. The answer is still validated against the full schema.
_GRAMMAR_MAX_LENGTH = 1000


def negotiated_mode(url: str, model: str, modes: tuple[str, ...] = RESPONSE_MODES) -> str | None:
    """The response_format mode endpoint ``url`` (its chat-completions URL) is asked with for
    ``model`` in this process, as negotiated among ``modes``; None before its first call."""
    remembered = _NEGOTIATED.get((url, model, modes))
    return None if remembered is None else mode_to_ask(remembered, time.monotonic(), modes)


def mode_to_ask(remembered: tuple[str, float] | None, now: float, modes: tuple[str, ...]) -> str:
    """The mode to ask an endpoint with at ``now`` (time.monotonic), given the mode
    ``remembered`` for it and when it was moved there: the best of ``modes`` when nothing is
    remembered or when a worse mode was reached MODE_RETRY_AFTER seconds ago or more."""
    if remembered is None:
        return modes[0]
    mode, since = remembered
    if mode != modes[0] and now - since >= MODE_RETRY_AFTER:
        return modes[0]
    return mode


def next_mode(
    mode: str, status: int, body: str, modes: tuple[str, ...] = RESPONSE_MODES
) -> str | None:
    """The mode of ``modes`` to try after ``mode`` was answered ``status`` with ``body``: the
    next one when the error says response_format (or its type) is rejected, with status 400,
    422 or 500 (unsupported, not an outage), else None (an ordinary error: retried or not,
    counted by the breaker or not, as any other)."""
    if status not in _FORMAT_STATUSES or not _ABOUT_FORMAT.search(body) or mode == modes[-1]:
        return None
    return modes[modes.index(mode) + 1]


class ChatClient:
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` client over httpx.

    Works with OpenAI, Azure OpenAI (``api_key_header="api-key"`` and ``api_version``), vLLM,
    Ollama, llama.cpp's server and llama-cpp-python's. Asks for structured output in the best
    mode the endpoint takes (of ``modes``, RESPONSE_MODES unless told): an error that names
    response_format moves to the next mode at once, within the same call (no retry, no
    breaker), and the mode that answers is remembered for the process. Every failure is an
    LLMError whose ``retriable`` flag says whether to try again.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        api_version: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        modes: tuple[str, ...] = RESPONSE_MODES,
    ) -> None:
        if not modes or not set(modes) <= set(RESPONSE_MODES):
            raise ValueError(f"modes must be some of {RESPONSE_MODES}, in order of preference")
        self.modes = modes
        auth, self._params = endpoint_auth(api_key, api_key_header, api_version)
        headers = {"Content-Type": "application/json", **auth}
        self.model = model
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )
        self._timeout = timeout
        #: Requests answered with an error about response_format (each moved to the next mode).
        self.unsupported_modes = 0

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> ChatClient:
        """The client of the settings' LLM endpoint (``llm_base_url``, which must be set);
        ``options`` are the constructor's others (``transport``, ``modes``)."""
        if not settings.llm_base_url:
            raise ValueError("no LLM endpoint is set (llm_base_url)")
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            settings.llm_base_url,
            settings.llm_model,
            api_key=key,
            api_key_header=settings.llm_api_key_header,
            api_version=settings.llm_api_version,
            timeout=settings.llm_timeout,
            **options,
        )

    @property
    def mode(self) -> str | None:
        """The response_format mode this endpoint is asked with, None before its first call."""
        return negotiated_mode(self._url, self.model, self.modes)

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        await self._client.aclose()

    async def complete(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None
    ) -> ChatReply:
        """Send ``messages``; with ``schema``, ask for an answer that satisfies it."""
        started = time.perf_counter()
        if schema is None:
            response = await self._post(self._body(messages, None, "text"))
        else:
            response = await self._negotiate(messages, schema)
        latency_ms = int((time.perf_counter() - started) * 1000)
        if response.status_code >= 400:
            raise _status_error(response)
        try:
            data = response.json()
            message = data["choices"][0]["message"]
            content = _text_of(message.get("content"))
            usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            model = data.get("model")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            raise LLMError(
                f"the LLM endpoint answered {response.status_code} without a chat completion",
                code="bad_response",
                retriable=True,
                status=response.status_code,
            ) from exc
        # A server that reports no usage is charged an estimate (about 4 characters a token),
        # so that the daily budget still holds.
        prompt_tokens = tokens_or_estimate(
            usage.get("prompt_tokens"), sum(len(m["content"]) for m in messages)
        )
        completion_tokens = tokens_or_estimate(usage.get("completion_tokens"), len(content))
        return ChatReply(
            content=content,
            model=model.replace("\0", "")[:200] if isinstance(model, str) and model else self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
        )

    async def _negotiate(
        self, messages: list[dict[str, str]], schema: dict[str, Any]
    ) -> httpx.Response:
        endpoint = (self._url, self.model, self.modes)
        remembered = _NEGOTIATED.get(endpoint)
        mode = mode_to_ask(remembered, time.monotonic(), self.modes)
        while True:
            response = await self._post(self._body(messages, schema, mode))
            if response.status_code < 400:
                # The time a worse mode was reached is kept, not renewed on each answer, so
                # that the best mode is tried again MODE_RETRY_AFTER after it.
                current = _NEGOTIATED.get(endpoint)
                if current is None or current[0] != mode:
                    _NEGOTIATED[endpoint] = (mode, time.monotonic())
                return response
            following = next_mode(mode, response.status_code, response.text[:2000], self.modes)
            if following is None:
                return response  # an ordinary error: the caller's to judge
            self.unsupported_modes += 1
            log.info(
                "mendline: %s does not take response_format %s (HTTP %d); trying %s",
                self._url,
                mode,
                response.status_code,
                following,
            )
            # Remembered at once: concurrent calls do not each find it out again.
            mode = following
            _NEGOTIATED[endpoint] = (mode, time.monotonic())

    def _body(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None, mode: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if schema is None:
            return body
        if mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "finding", "schema": schema},
            }
        elif mode == "json_object":
            body["response_format"] = {"type": "json_object", "schema": _grammar_schema(schema)}
        else:
            # No structured output: the schema goes with the instructions (in the system
            # message: some chat templates take a system message only at the start).
            described = json.dumps(schema, separators=(",", ":"))
            rule = f"\n\nThe JSON object must satisfy this JSON Schema: {described}"
            body["messages"] = [
                {**m, "content": m["content"] + rule} if i == 0 and m["role"] == "system" else m
                for i, m in enumerate(messages)
            ]
        return body

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        # httpx's timeout is per phase (connect, each read...): a server trickling its answer
        # would never trip it. The call as a whole gets the timeout too.
        try:
            async with asyncio.timeout(self._timeout):
                return await self._client.post(self._url, json=body, params=self._params)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise LLMError(
                f"the LLM call timed out ({type(exc).__name__})", code="timeout", retriable=True
            ) from exc
        except httpx.TransportError as exc:
            raise LLMError(
                f"cannot reach the LLM endpoint: {exc!r}", code="unreachable", retriable=True
            ) from exc


def _grammar_schema(schema: Any) -> Any:
    """``schema`` with every maxLength at most _GRAMMAR_MAX_LENGTH."""
    if isinstance(schema, dict):
        return {
            key: min(value, _GRAMMAR_MAX_LENGTH)
            if key == "maxLength" and type(value) is int
            else _grammar_schema(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_grammar_schema(item) for item in schema]
    return schema


def _text_of(content: object) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    raise TypeError(f"message content is a {type(content).__name__}")


def _status_error(response: httpx.Response) -> LLMError:
    status = response.status_code
    wait = retry_after(response.headers.get("retry-after"))
    retriable = retriable_status(status) or status == 409
    detail = response.text[:300].strip()
    return LLMError(
        f"the LLM endpoint answered HTTP {status}" + (f": {detail}" if detail else ""),
        code=f"http_{status}",
        retriable=retriable,
        status=status,
        retry_after=wait,
    )


def parse_answer(content: str) -> Diagnosis:
    """The Diagnosis in an LLM's answer: the whole text as JSON, or the JSON inside it
    (a fenced block, or the first object) for servers that ignore response_format.

    Raises ValueError saying what is wrong, in words fit to send back to the model.
    """
    document = answer_document(content)
    try:
        return Diagnosis.model_validate(document)
    except RecursionError:
        raise ValueError("the answer's JSON is nested too deeply") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(answer)'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:5]
        )
        raise ValueError(problems) from None


def answer_document(content: str) -> dict[str, Any]:
    """The JSON object in an LLM's answer: the whole text, or the JSON inside it (a fenced
    block, or the first object) for servers that ignore response_format. Raises ValueError
    saying what is wrong, in words fit to send back to the model."""
    document: Any = None
    try:
        document = json.loads(content)
    except ValueError:
        document = _embedded_json(content)
    except RecursionError:
        raise ValueError("the answer's JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise ValueError("the answer holds no JSON object")
    return document


def _embedded_json(content: str) -> Any:
    block = _JSON_BLOCK.search(content)
    if block:
        try:
            return json.loads(block[1])
        except (ValueError, RecursionError):
            pass
    decoder = json.JSONDecoder()
    start = content.find("{")
    while start != -1:
        try:
            return decoder.raw_decode(content, start)[0]
        except (ValueError, RecursionError):
            start = content.find("{", start + 1)
    return None


class MemoryLedger:
    """A Ledger in memory, for one process (tests, ``mendline analyze --issue`` dry runs)."""

    def __init__(self) -> None:
        self.calls: list[LLMCall] = []

    async def record(self, call: LLMCall) -> None:
        """Record one call."""
        self.calls.append(call)

    async def spent_today(self) -> tuple[int, float]:
        """Tokens and US dollars of every call recorded."""
        tokens = sum(c.prompt_tokens + c.completion_tokens for c in self.calls)
        return tokens, sum(c.cost_usd for c in self.calls)


class LLMAnalyser:
    """Analyses with an LLM, and falls back to the heuristic finding, saying why, when the
    breaker is open, the daily budget is spent, the calls fail, or the answer is invalid
    twice.

    Calls are limited to ``concurrency`` at once; failed calls are retried ``max_retries``
    times with jittered exponential backoff (from up to ``backoff`` seconds, doubling, up to
    30 s; a Retry-After is honoured) when the error is retriable; after ``breaker.failures``
    analyses in a row fail, no call is made until the breaker's cooldown has passed and a
    probe succeeds.
    """

    def __init__(
        self,
        client: ChatClient,
        ledger: Ledger,
        *,
        heuristic: HeuristicAnalyser | None = None,
        scrubber: Scrubber | None = None,
        concurrency: int = 4,
        max_retries: int = 2,
        breaker: CircuitBreaker | None = None,
        input_price: float = 0.0,
        output_price: float = 0.0,
        daily_tokens: int = 0,
        daily_cost: float = 0.0,
        backoff: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.breaker = breaker or CircuitBreaker(failures=5, cooldown=60.0)
        self._heuristic = heuristic or HeuristicAnalyser()
        self._scrubber = scrubber or Scrubber()
        self._limit = asyncio.Semaphore(concurrency)
        self._meter = MeteredChat(
            client,
            ledger,
            max_retries=max_retries,
            input_price=input_price,
            output_price=output_price,
            daily_tokens=daily_tokens,
            daily_cost=daily_cost,
            backoff=backoff,
            sleep=sleep,
        )
        self._schema = answer_schema()

    async def analyse(self, context: IssueContext) -> Finding:
        """A Finding for ``context``: the LLM's when it gives a valid one, else the heuristic
        analyser's with ``fallback_code`` and ``fallback_reason`` saying why. Raises only when
        cancelled, or when the ledger cannot be read to check the budget (the database is
        down: try again later).

        A health check's issue (``context.health``) gets the heuristic finding, not as a
        fallback: its evidence is a few measured values the knowledge base explains, and the
        text in it (a body, an error) came from the checked service; no call, no budget."""
        fallback = self._heuristic.diagnose(context)
        if context.health is not None:
            return fallback
        messages = build_prompt(context, self._scrubber)
        spent: list[ChatReply] = []
        async with self._limit:  # the budget is read by the calls about to be made
            over = await self._meter.over_budget()
            if over:
                return fallback.as_fallback("budget_spent", over)
            if not self.breaker.allow():
                return fallback.as_fallback(
                    "breaker_open", "the LLM circuit breaker is open after repeated failures"
                )
            outcome: BreakerOutcome = "none"
            try:
                finding, outcome = await self._ask(context, messages, spent, fallback)
            except LLMError as exc:
                outcome = failure_outcome(exc)
                return self._fallen_back(
                    fallback, _fallback_code(exc), f"the LLM call failed: {exc}", spent, messages
                )
            except OverBudget as exc:
                return self._fallen_back(fallback, "budget_spent", str(exc), spent, messages)
            except DatabaseError:
                raise  # the ledger is out of reach (checking the budget between calls): later
            except Exception as exc:  # a bug of ours or an answer we did not foresee
                log.exception("mendline: the LLM analysis of issue %d failed", context.issue.id)
                outcome = "failure"
                reason = f"the LLM analysis failed: {type(exc).__name__}"
                return self._fallen_back(fallback, "unexpected_error", reason, spent, messages)
            finally:
                settle(self.breaker, outcome)
            return finding

    async def _ask(
        self,
        context: IssueContext,
        messages: list[dict[str, str]],
        spent: list[ChatReply],
        fallback: Finding,
    ) -> tuple[Finding, BreakerOutcome]:
        issue_id = context.issue.id
        reply = await self._meter.call(messages, self._schema, issue_id, spent)
        try:
            diagnosis = parse_answer(reply.content)
        except ValueError as first:
            await self._meter.record(issue_id, reply, "invalid")
            messages = messages + correction(reply.content, str(first))
            reply = await self._meter.call(messages, self._schema, issue_id, spent)
            try:
                diagnosis = parse_answer(reply.content)
            except ValueError as second:
                await self._meter.record(issue_id, reply, "invalid")
                reason = f"the LLM's answer was invalid twice: {second}"
                # The endpoint works; its answers do not.
                fallen = self._fallen_back(fallback, "invalid_answer", reason, spent, messages)
                return fallen, "success"
        await self._meter.record(issue_id, reply, "ok")
        risks = fix_risks(diagnosis.suggested_fix, diagnosis.fix_patch)
        decision = finding_severity(
            context.issue.level, diagnosis.severity, diagnosis.confidence, fallback.severity
        )
        if decision.capped:
            log.warning("mendline: issue %d: %s", context.issue.id, decision.reason)
            risks.append("severity_capped")
        finding = Finding(
            **diagnosis.model_dump() | {"severity": decision.severity},
            analyser="llm",
            model=reply.model,
            prompt=messages,
            risks=risks,
            **self._meter.usage(spent),
        )
        return finding, "success"

    def _fallen_back(
        self,
        fallback: Finding,
        code: FallbackCode,
        reason: str,
        spent: list[ChatReply],
        messages: list[dict[str, str]],
    ) -> Finding:
        update: dict[str, Any] = {"prompt": messages}
        if spent:
            update.update(self._meter.usage(spent), model=spent[-1].model)
        return fallback.model_copy(update=update).as_fallback(code, reason)


def _fallback_code(exc: LLMError) -> FallbackCode:
    """The fallback code of a failed call, read from the error's attributes."""
    code = _FALLBACK_OF_CODE.get(exc.code)
    if code is not None:
        return code
    if exc.status is not None and exc.code == f"http_{exc.status}":
        return "llm_http_error"
    return "unexpected_error"  # a form ChatClient does not raise
