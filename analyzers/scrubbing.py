"""Secret scrubbing: filters secret-looking keys and secrets inside strings from error events.

It runs twice: in the app process before an event is shipped, and in the consumer for events
from producers in other languages. Pure functions, no I/O. Scrubbing is idempotent: text that
was already scrubbed comes through a second pass unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from mendline.schemas.errors import ConfigError

__all__ = ["FILTERED", "Scrubber", "scrub"]

#: What a filtered value or a secret found in a string is replaced with.
FILTERED: str = "[Filtered]"

# Key names whose values are secrets, matched as substrings of the key lowercased, with '-' and
# '_' alike (as Sentry does): "db_password", "X-Auth-Token" and "sessionid" all match. This
# filters some innocent keys too ("author", "max_tokens"); leaking is the worse mistake.
# "privatekey" is the camelCase "privateKey" lowercased, which "private_key" would miss.
_DEFAULT_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "auth",
    "credentials",
    "authorization",
    "cookie",
    "set_cookie",
    "session",
    "csrf",
    "dsn",
    "private_key",
    "privatekey",
)

# Values nested deeper than this are filtered whole: a real context never nests so deep, and
# recursing further could exhaust the stack on hostile input.
_MAX_DEPTH = 64
# Both caches are cleared when full: cheap, and the recurring keys and source lines that make
# them worthwhile are back after one event.
_KEY_CACHE_SIZE = 4096
_CLEAN_CACHE_SIZE = 8192
_CLEAN_MAX_LEN = 256

# A JSON-ish string may hold the key quoted ("api_key": ...), or escaped inside another string
# (\"api_key\": ...); the separators are those of query strings, logfmt, headers, JSON, YAML,
# Python and Go (:=), Ruby (=>). "==" and "::" are comparisons and namespaces, not pairs.
_SEPARATOR = r"""[\w-]*(?:\\?["'])?[ \t]*(?::=|=>|=(?!=)|:(?!:))[ \t]*"""
# "Authorization: Basic xyz" keeps its scheme; only the credentials after it are filtered.
_AUTH_SCHEMES = r"(?:bearer|basic|digest|negotiate|ntlm|token)[ \t]+"
_UNQUOTED_VALUE = r"""[^\s&,;"'\\)\]}>]+"""

# Words that follow "bearer" in prose ("missing bearer token") rather than a credential.
_BEARER_PROSE = (
    "a|an|and|auth|authentication|authorization|be|credential|credentials|for|header|headers"
    "|in|invalid|is|missing|not|of|or|realm|required|scheme|the|to|token|tokens|was|with"
)

_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----"
    r"(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*)",  # a key cut short is filtered to the end
    re.DOTALL,
)
_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*", re.ASCII)
_AWS = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_SLACK = re.compile(r"xox[abeprs][.-][A-Za-z0-9.-]{8,}")
_GITHUB = re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,}", re.ASCII)
_STRIPE = re.compile(r"[rs]k_live_[A-Za-z0-9]{16,}")
_BEARER = re.compile(
    rf"(?P<pre>\bbearer[ \t]+)(?!(?:{_BEARER_PROSE})\b)[\w.~+/-]+=*",
    re.IGNORECASE | re.ASCII,
)
# RFC 3986: the userinfo ends at the first '@' and cannot hold '/', '?' or '#' unescaped.
_URL_PASSWORD = re.compile(r"(?P<pre>://[^:/?#@\s]*:)[^@/?#\s]+(?=@)")
# 13 to 19 digits, single spaces or dashes between them, starting as card numbers do (2-6:
# Mastercard, Amex, Diners, JCB, Visa, Discover, UnionPay, Maestro), so that epoch
# milliseconds and nanoseconds (1...) are not candidates; Luhn decides in _filter_card.
_CARD = re.compile(r"(?<![\w.+])[2-6][0-9](?:[ -]?[0-9]){11,17}(?!\w)", re.ASCII)
_CARD_SEPARATOR = re.compile(r"([ -])")
_REPLACE_VALUE = r"\g<pre>" + FILTERED

# Rarest first, for picking the character a trigger alternative is anchored on.
_RARITY = "zqjxkvbywgfpmucdlhrsnioate"


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits)


def _filter_card(match: re.Match[str]) -> str:
    text = match.group()
    if _is_card(text.replace(" ", "").replace("-", "")):
        return FILTERED
    parts = _CARD_SEPARATOR.split(text)  # digit groups at even indexes, separators between
    groups = parts[::2]
    if len(groups) > 8:  # single-digit groups: not worth trying every sub-span
        return text
    # A card followed or preceded by other numbers ("4111 1111 1111 1111 12/25"): the longest
    # run of whole groups that is a card number.
    for size in range(len(groups) - 1, 0, -1):
        for first in range(len(groups) - size + 1):
            if _is_card("".join(groups[first : first + size])):
                before = "".join(parts[: 2 * first])
                after = "".join(parts[2 * (first + size) - 1 :])
                return before + FILTERED + after
    return text


# Digits become '0', the separators of a card number go, everything else becomes 'x': a card
# number then shows as 13 '0' in a row (bytes.translate is far quicker than a regex scan).
_DIGIT_SHAPE = bytes(48 if 48 <= byte <= 57 else 120 for byte in range(256))
_THIRTEEN_DIGITS = b"0" * 13


def _may_hold_card(text: str) -> bool:
    shape = text.encode("utf-8", "surrogatepass").translate(_DIGIT_SHAPE, b" -")
    return _THIRTEEN_DIGITS in shape


def _normalise_key(key: str) -> str:
    return key.lower().replace("-", "_")


def _key_regex(keys: Iterable[str]) -> str:
    """A regex source matching any of the normalised ``keys``, '-' and '_' alike."""
    return "|".join(re.escape(key).replace("_", "[_-]") for key in keys)


def _minimal(keys: Iterable[str]) -> list[str]:
    """The keys that do not contain another key: substring matching makes the rest redundant."""
    unique = sorted(set(keys), key=len)
    kept: list[str] = []
    for key in unique:
        if not any(shorter in key for shorter in kept):
            kept.append(key)
    return kept


def _trigger(keys: list[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The quick check that a lowercased string may hold a secret, and the same for keys.

    Every alternative starts with one literal character, chosen rare, and checks the rest with
    lookarounds: the regex engine then skips the other characters cheaply, where an
    alternation of words would be tried at every position. It errs only towards "maybe".
    Card numbers are left to _may_hold_card.
    """
    anchored: dict[str, list[str]] = {}

    def add(anchor: str, check: str) -> None:
        anchored.setdefault(anchor, []).append(check)

    for key in keys:
        # Anchor each key on its rarest character; '_' stands for '-' too, so never that.
        letters = [c for c in key if c != "_"] or ["_"]
        anchor = min(letters, key=lambda c: _RARITY.find(c) if c in _RARITY else 10)
        at = key.index(anchor)
        behind = _key_regex([key[: at + 1]])
        ahead = _key_regex([key[at + 1 :]]) + r"""[\w-]*\\?["']?[ \t]*[=:]"""
        for literal in ("_", "-") if anchor == "_" else (anchor,):
            add(literal, f"(?<={behind})(?={ahead})")
    add("b", r"(?<=-----b)(?=egin)")
    add("b", r"(?=earer[ \t]+[\w.~+/-])")
    add("j", r"(?<=eyj)(?=[\w-]*\.[\w-]+\.)")
    add("k", r"(?<=ak)(?=ia[a-z0-9]{16})")
    add("s", r"(?<=as)(?=ia[a-z0-9]{16})")
    add("x", r"(?=ox[abeprs][.-])")
    add("g", r"(?=h[pousr]_[a-z0-9]{36}|ithub_pat_)")
    add("k", r"(?<=[rs]k)(?=_live_[a-z0-9]{16})")
    add(":", r"(?=//[^:/?#@\s]*:[^@/?#\s]+@)")
    text = "|".join(
        re.escape(anchor) + "(?:" + "|".join(checks) + ")" for anchor, checks in anchored.items()
    )
    return re.compile(text), re.compile(_key_regex(keys))


class Scrubber:
    """Filters secrets from keys and strings; configure once, then call per event.

    ``extra_keys`` are more key names, matched like the built-in ones (case-insensitive
    substrings, '-' and '_' alike); ``extra_patterns`` are regular expressions whose whole
    match is filtered inside strings. An invalid pattern raises ConfigError.
    """

    def __init__(self, extra_keys: Iterable[str] = (), extra_patterns: Iterable[str] = ()) -> None:
        keys = list(_DEFAULT_KEYS)
        for key in _as_list(extra_keys, "extra_keys"):
            if not key.strip():
                raise ConfigError("scrubbing: an extra key name is empty, which would match all")
            keys.append(_normalise_key(key.strip()))
        keys = _minimal(keys)
        self._trigger, self._key = _trigger(keys)
        self._pairs = re.compile(
            rf"(?P<pre>(?:{_key_regex(keys)}){_SEPARATOR}(?:(?P<esc>\\)?(?P<q>[\"']))?"
            rf"(?:{_AUTH_SCHEMES})?+)(?!\[Filtered\])"
            # A quoted value runs to its closing quote (escaped quotes inside a quoted value
            # are skipped unless the value itself was opened with an escaped quote).
            rf"(?(q)(?(esc)(?:(?!\\(?P=q))[^\r\n])+|(?:\\[^\r\n]|(?!(?P=q))[^\\\r\n])+)"
            rf"|{_UNQUOTED_VALUE})",
            re.IGNORECASE | re.ASCII,
        )
        self._extra: list[re.Pattern[str]] = []
        for pattern in _as_list(extra_patterns, "extra_patterns"):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"scrubbing: invalid extra pattern {pattern!r}: {exc}") from exc
            if compiled.match("") is not None:
                raise ConfigError(
                    f"scrubbing: extra pattern {pattern!r} matches the empty string"
                )
            self._extra.append(compiled)
        self._keys_seen: dict[str, bool] = {}
        self._clean: set[str] = set()

    def is_secret_key(self, key: str) -> bool:
        """Whether values under ``key`` are secrets (e.g. "password", "X-Auth-Token")."""
        verdict = self._keys_seen.get(key)
        if verdict is None:
            verdict = self._key.search(_normalise_key(key)) is not None
            if len(self._keys_seen) >= _KEY_CACHE_SIZE:
                self._keys_seen.clear()
            self._keys_seen[key] = verdict
        return verdict

    def scrub_text(self, text: str) -> str:
        """Return ``text`` with every secret found in it replaced by FILTERED."""
        if self._all_clean([text]):
            return text
        scrubbed = self._scrub_text(text)
        if scrubbed == text:  # a false alarm, such as "session.commit()" in a source line
            self._remember_clean(text)
        return scrubbed

    def scrub_value(self, value: Any) -> Any:
        """Return a scrubbed copy of a JSON-like value; the input is never modified.

        Dicts get new dicts (values under secret-looking keys filtered whole, the others
        scrubbed), lists and tuples become new lists, strings are scrubbed as text, anything
        else is returned as it is.
        """
        return self._value(value, 0)

    def scrub_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Scrub an ErrorEvent v1 wire dict in place, and return it.

        Replaced in place: "message", each exception's "value" and each frame's
        "context_line" (source lines can hold hard-coded keys); "context" and "tags" are
        replaced by scrubbed copies (a tag under a secret-looking key becomes FILTERED).
        Fields that are missing or of an unexpected type are left alone. An event without
        secrets is not written to at all.
        """
        texts: list[str] = []
        message = event.get("message")
        if isinstance(message, str):
            texts.append(message)
        exceptions = event.get("exceptions")
        if isinstance(exceptions, list):
            for exc in exceptions:
                if not isinstance(exc, dict):
                    continue
                value = exc.get("value")
                if isinstance(value, str):
                    texts.append(value)
                frames = exc.get("frames")
                if isinstance(frames, list):
                    for frame in frames:
                        if isinstance(frame, dict):
                            line = frame.get("context_line")
                            if isinstance(line, str):
                                texts.append(line)
        context = event.get("context")
        tags = event.get("tags")
        if (
            self._gather(context, texts, 0)
            and self._gather(tags, texts, 0)
            and self._all_clean(texts)
        ):
            return event
        scrub_text = self.scrub_text
        if isinstance(message, str):
            event["message"] = scrub_text(message)
        if isinstance(exceptions, list):
            for exc in exceptions:
                if not isinstance(exc, dict):
                    continue
                if isinstance(exc.get("value"), str):
                    exc["value"] = scrub_text(exc["value"])
                frames = exc.get("frames")
                if isinstance(frames, list):
                    for frame in frames:
                        if isinstance(frame, dict) and isinstance(frame.get("context_line"), str):
                            frame["context_line"] = scrub_text(frame["context_line"])
        if "context" in event:
            event["context"] = self._value(context, 0)
        if "tags" in event:
            event["tags"] = self._value(tags, 0)
        return event

    def _gather(self, value: Any, texts: list[str], depth: int) -> bool:
        """Collect the strings inside ``value``; False if it has a secret key or is too deep."""
        if isinstance(value, dict):
            if depth >= _MAX_DEPTH:
                return False
            seen = self._keys_seen
            for key, item in value.items():
                if isinstance(key, str):
                    secret = seen.get(key)
                    if secret or (secret is None and self.is_secret_key(key)):
                        return False
                if isinstance(item, str):
                    texts.append(item)
                elif isinstance(item, dict | list | tuple) and not self._gather(
                    item, texts, depth + 1
                ):
                    return False
        elif isinstance(value, list | tuple):
            if depth >= _MAX_DEPTH:
                return False
            for item in value:
                if isinstance(item, str):
                    texts.append(item)
                elif isinstance(item, dict | list | tuple) and not self._gather(
                    item, texts, depth + 1
                ):
                    return False
        elif isinstance(value, str):
            texts.append(value)
        return True

    def _all_clean(self, texts: list[str]) -> bool:
        """Whether none of ``texts`` can hold a secret; remembers short clean strings."""
        clean = self._clean
        fresh = [text for text in texts if text not in clean]
        if not fresh:
            return True
        # One search over all the strings joined costs much less than one per string. The
        # trigger never matches across the newline, so it misses nothing this way.
        blob = "\n".join(fresh)
        if self._trigger.search(blob.lower()) is not None or _may_hold_card(blob):
            return False
        for pattern in self._extra:  # user patterns may use ^ and $: one string at a time
            for text in fresh:
                if pattern.search(text) is not None:
                    return False
        if len(clean) >= _CLEAN_CACHE_SIZE:
            clean.clear()
        clean.update(text for text in fresh if len(text) <= _CLEAN_MAX_LEN)
        return True

    def _remember_clean(self, text: str) -> None:
        if len(text) <= _CLEAN_MAX_LEN:
            if len(self._clean) >= _CLEAN_CACHE_SIZE:
                self._clean.clear()
            self._clean.add(text)

    def _scrub_text(self, text: str) -> str:
        lower = text.lower()  # for cheap substring checks that only decide what to run
        if "-----begin" in lower:
            text = _PEM.sub(FILTERED, text)
        if "eyj" in lower:
            text = _JWT.sub(FILTERED, text)
        if "akia" in lower or "asia" in lower:
            text = _AWS.sub(FILTERED, text)
        if "xox" in lower:
            text = _SLACK.sub(FILTERED, text)
        if "gh" in lower:
            text = _GITHUB.sub(FILTERED, text)
        if "_live_" in lower:
            text = _STRIPE.sub(FILTERED, text)
        text = self._pairs.sub(_REPLACE_VALUE, text)
        if "bearer" in lower:
            text = _BEARER.sub(_REPLACE_VALUE, text)
        if "://" in lower:
            text = _URL_PASSWORD.sub(_REPLACE_VALUE, text)
        text = _CARD.sub(_filter_card, text)
        for pattern in self._extra:
            text = pattern.sub(FILTERED, text)
        return text

    def _value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            if depth >= _MAX_DEPTH:
                return FILTERED
            return {
                key: FILTERED
                if isinstance(key, str) and self.is_secret_key(key)
                else self._value(item, depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            if depth >= _MAX_DEPTH:
                return FILTERED
            return [self._value(item, depth + 1) for item in value]
        return value


def _as_list(values: Iterable[str], name: str) -> list[str]:
    if isinstance(values, str | bytes):
        raise ConfigError(f"scrubbing: {name} must be a list of strings, not one string")
    items = list(values)
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"scrubbing: {name} must hold strings, got {item!r}")
    return items


_DEFAULT = Scrubber()


def scrub(value: Any) -> Any:
    """Scrub a JSON-like value with the default Scrubber; see ``Scrubber.scrub_value``."""
    return _DEFAULT.scrub_value(value)
