"""Filters secrets out of error events: values under secret-looking keys, secrets in strings.

It runs in the app process before an event leaves it, and again in the consumer for events
from producers in other languages; scrubbed text comes through a second pass unchanged. No I/O.
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
# The rest of the key name after the secret word is bounded: "tokentokentoken..." would
# otherwise cost time quadratic in its length.
_KEY_REST = r"[\w-]{0,64}+"
_SEPARATOR = _KEY_REST + r"""(?:\\?["'])?[ \t]*(?>:=|=>|=(?!=)|:(?!:))[ \t]*+"""
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
# Only at the start of a run of base64url characters, so that "eyJ-eyJ-..." is not quadratic.
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]*+\.[\w-]++\.[\w-]*+", re.ASCII)
_AWS = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", re.ASCII)
_SLACK = re.compile(r"xox[abeprs][.-][A-Za-z0-9.-]{8,}")
_GITHUB = re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,}", re.ASCII)
_STRIPE = re.compile(r"[rs]k_live_[A-Za-z0-9]{16,}")
# Matched against the text lowercased (see _filter_values), so written in lowercase.
_BEARER = re.compile(rf"\bbearer[ \t]+(?!(?:{_BEARER_PROSE})\b)(?P<value>[\w.~+/-]+=*)", re.ASCII)
# RFC 3986: the userinfo ends at the first '@' and cannot hold '/', '?' or '#' unescaped.
_URL_PASSWORD = re.compile(r"://[^:/?#@\s]*:(?P<value>[^@/?#\s]+)@")
# 13 to 19 digits, single spaces or dashes between them, starting as card numbers do
# (Mastercard 22-27 and 5, Amex and Diners and JCB 30 and 34-38, Visa 4, Discover and UnionPay
# and Maestro 6), so that epoch milliseconds (17...) and compact timestamps (2024...) are not
# candidates; Luhn decides in _filter_card. Not after a word character, '.' or '+' either:
# those are identifiers, decimals and phone numbers.
_CARD_START = r"(?:2[2-7]|3[04-8]|[4-6][0-9])"
_CARD = re.compile(rf"(?<![\w.+]){_CARD_START}(?:[ -]?[0-9]){{11,17}}(?!\w)", re.ASCII)
_CARD_DIGITS = re.compile(rf"{_CARD_START}[0-9]{{11,17}}")
_CARD_SEPARATOR = re.compile(r"[ -]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return _CARD_DIGITS.fullmatch(digits) is not None and _luhn(digits)


def _filter_card(match: re.Match[str]) -> str:
    text = match.group()
    groups = _CARD_SEPARATOR.split(text)
    if len(groups) > 8:  # digits one or two at a time: only the whole is worth trying
        groups = ["".join(groups)]
    # A card may come with other numbers ("4111 1111 1111 1111 12/25"), so any run of whole
    # groups may be the card; the numbers next to it are then filtered along with it.
    for first in range(len(groups)):
        for last in range(len(groups), first, -1):
            if _is_card("".join(groups[first:last])):
                return FILTERED
    return text


def _ascii_lower(text: str) -> str:
    """``text`` with only its ASCII letters lowercased: same length, same positions."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _filter_values(pattern: re.Pattern[str], text: str, lower: str) -> str:
    """Filter the "value" group of each match of ``pattern`` in ``lower``, out of ``text``.

    ``lower`` is ``text`` through _ascii_lower: matching it with a lowercase pattern does
    what re.IGNORECASE would, several times faster, as the regex engine can then skip to the
    possible first letters.
    """
    pieces: list[str] = []
    last = 0
    for match in pattern.finditer(lower):
        start, end = match.span("value")
        pieces += (text[last:start], FILTERED)
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


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


# The quick check runs on the strings folded: ASCII lowercased, '-' as '_', and the rare
# letters below all as \x01 (via bytes.translate, then latin-1 back to a str). A regex that
# starts with one literal character is scanned for at memchr speed, where any other start
# costs the regex engine about 7 ns per character; so the keys and token shapes with a rare
# letter share one regex anchored on \x01, and the keys without one get a substring check
# before their regex. Folding only merges characters and the checks allow \x01 wherever a
# rare letter may be, so they can only err towards "maybe".
_RARE = "bjkvwx"
_FOLD = bytes(
    1 if chr(byte).lower() in _RARE else ord(chr(byte).lower()) if byte < 128 else byte
    for byte in range(256)
).replace(b"-", b"_")
# Digits become '0', the separators of a card number go, everything else becomes 'x': a card
# number then shows as 13 '0' in a row.
_DIGIT_SHAPE = bytes(48 if 48 <= byte <= 57 else 120 for byte in range(256))
_THIRTEEN_DIGITS = b"0" * 13
_W = r"[\w\x01]"  # a word character, folded
_KEY_TAIL = _W + r"""{0,64}\\?["']?[ \t]*[=:]"""
# Token shapes as they look folded, each after the \x01 it is anchored on: PEM header,
# "bearer <credentials>", JWT, AKIA key ids, Slack, fine-grained GitHub and Stripe keys.
_RARE_SHAPES = (
    r"egin(?<=_____\x01egin)",
    r"earer[ \t]+[\w\x01.~+/]",
    r"(?<=ey\x01)",
    r"ia(?<=a\x01ia)[a-z0-9\x01]{16}",
    r"o\x01(?<=\x01o\x01)[a\x01eprs][._]",
    r"_pat_(?<=githu\x01_pat_)",
    r"_li\x01e_(?<=[rs]\x01_li\x01e_)[a-z0-9\x01]{16}",
)
# Shapes without a rare letter, each behind a substring it must contain.
_PLAIN_SHAPES = (
    ("asia", r"asia[a-z0-9\x01]{16}"),
    ("gh", r"gh[pousr]_[a-z0-9\x01]{36}"),
    ("@", r"://[^:/?#@\s]*:[^@/?#\s]+@"),
)


def _fold(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").translate(_FOLD).decode("latin-1")


class _Trigger:
    """Whether a string may hold a secret: never wrong when it says no, cheap to ask."""

    def __init__(self, keys: Iterable[str]) -> None:
        shapes = list(_RARE_SHAPES)
        plain = list(_PLAIN_SHAPES)
        for key in keys:
            folded = _fold(key)
            at = folded.find("\x01")
            if at < 0:
                plain.append((folded, re.escape(folded) + _KEY_TAIL))
            else:
                rest = folded[at + 1 :]
                shapes.append(re.escape(rest) + f"(?<={re.escape(folded)})" + _KEY_TAIL)
        # ASCII classes only: latin-1 turned the bytes of other characters into letters and
        # spaces that no built-in pattern matches there.
        self._rare = re.compile("\x01(?:" + "|".join(shapes) + ")", re.ASCII)
        self._plain = tuple((needle, re.compile(pattern, re.ASCII)) for needle, pattern in plain)

    def fires(self, text: str) -> bool:
        """Whether ``text`` may hold a secret; strings may be joined with newlines."""
        raw = text.encode("utf-8", "surrogatepass")
        folded = raw.translate(_FOLD).decode("latin-1")
        if self._rare.search(folded) is not None:
            return True
        for needle, pattern in self._plain:
            if needle in folded and pattern.search(folded) is not None:
                return True
        return raw.translate(_DIGIT_SHAPE, b" -").find(_THIRTEEN_DIGITS) >= 0


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
        self._trigger = _Trigger(keys)
        self._key = re.compile(_key_regex(keys))
        # Matched against the text lowercased (see _filter_values).
        self._pairs = re.compile(
            rf"(?:{_key_regex(keys)}){_SEPARATOR}(?:(?P<esc>\\)?(?P<q>[\"']))?"
            rf"(?:{_AUTH_SCHEMES})?+(?!\[filtered\])"
            # A quoted value runs to its closing quote (escaped quotes inside a quoted value
            # are skipped unless the value itself was opened with an escaped quote).
            rf"(?P<value>(?(q)(?(esc)(?:(?!\\(?P=q))[^\r\n])+|(?:\\[^\r\n]|(?!(?P=q))[^\\\r\n])+)"
            rf"|{_UNQUOTED_VALUE}))",
            re.ASCII,
        )
        self._extra: list[re.Pattern[str]] = []
        for pattern in _as_list(extra_patterns, "extra_patterns"):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"scrubbing: invalid extra pattern {pattern!r}: {exc}") from exc
            if compiled.match("") is not None:
                raise ConfigError(f"scrubbing: extra pattern {pattern!r} matches the empty string")
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

    def is_clean(self, event: dict[str, Any]) -> bool:
        """Whether scrub_event would leave ``event`` as it is: nothing in it can hold a
        secret. Cheap (one quick check over all its strings); never wrong when it says yes."""
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
        return (
            self._gather(event.get("context"), texts, 0)
            and self._gather(event.get("tags"), texts, 0)
            and self._gather(event.get("fingerprint"), texts, 0)
            and self._all_clean(texts)
        )

    def scrub_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Scrub an ErrorEvent v1 wire dict in place, and return it.

        Rewritten in place, in the dicts they are in: "message", each exception's "value"
        and each frame's "context_line" (source lines can hold hard-coded keys). "context"
        and "tags" are replaced by scrubbed copies (a tag under a secret-looking key becomes
        FILTERED; keys are scrubbed as text too), and so is a custom "fingerprint". Fields
        that are missing or of another type are left alone. When nothing
        in the event can hold a secret, which is the usual case, it is not written to at all.
        """
        if self.is_clean(event):
            return event
        message = event.get("message")
        exceptions = event.get("exceptions")
        context = event.get("context")
        tags = event.get("tags")
        fingerprint = event.get("fingerprint")
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
        if isinstance(fingerprint, list):
            event["fingerprint"] = [
                scrub_text(part) if isinstance(part, str) else part for part in fingerprint
            ]
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
                    texts.append(key)  # a key can hold a secret too: {"https://u:pw@h": ...}
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
        if self._trigger.fires("\n".join(fresh)):
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
        # The substring checks only decide what to run: replacing secrets by FILTERED never
        # makes one of them true, so they may look at the text as it was at the start.
        lower = _ascii_lower(text)
        original = text
        if "-----begin" in lower:
            text = _PEM.sub(FILTERED, text)
        if "eyj" in lower:
            text = _JWT.sub(FILTERED, text)
        if "xox" in lower:
            text = _SLACK.sub(FILTERED, text)
        if "gh" in lower:
            text = _GITHUB.sub(FILTERED, text)
        if "_live_" in lower:
            text = _STRIPE.sub(FILTERED, text)
        if "akia" in lower or "asia" in lower:  # last: the tokens above may have ended a word
            text = _AWS.sub(FILTERED, text)
        if text != original:
            lower = _ascii_lower(text)
        scrubbed = _filter_values(self._pairs, text, lower)
        if "bearer" in lower:
            scrubbed = _filter_values(_BEARER, scrubbed, _ascii_lower(scrubbed))
        if "://" in lower:
            scrubbed = _filter_values(_URL_PASSWORD, scrubbed, scrubbed)
        scrubbed = _CARD.sub(_filter_card, scrubbed)
        for pattern in self._extra:
            scrubbed = pattern.sub(FILTERED, scrubbed)
        return scrubbed

    def _value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            if depth >= _MAX_DEPTH:
                return FILTERED
            return {
                (self.scrub_text(key) if isinstance(key, str) else key): FILTERED
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
