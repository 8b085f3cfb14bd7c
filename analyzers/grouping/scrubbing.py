"""Filters secrets out of error events: values under secret-looking keys, secrets in strings.

It runs in the app process before an event leaves it, and again in the consumer for events
from producers in other languages; scrubbed text comes through a second pass unchanged. No I/O.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from mendline.analyzers.grouping._credentials import CREDENTIALS, Credential
from mendline.analyzers.grouping._keys import (
    ALL_WORDS,
    FREE_WORDS,
    SQL_KEYS,
    SQL_PARAM_KEYS,
    argv_flag,
    argv_value,
    attached_password,
    is_id_number,
    named_secret_value,
    names_secret_exactly,
    sequence_of_pairs,
    split_key,
    sql_secret_positions,
    user_password,
    word_says_secret,
)
from mendline.schemas.errors import ConfigError
from mendline.schemas.redaction import FILTERED

__all__ = [
    "CREDENTIALS",
    "FILTERED",
    "SCRUBBED_HEADER",
    "Credential",
    "Scrubber",
    "child_environment",
    "scrub",
]

#: The record header with which mendline's shipper says the event was scrubbed, by a
#: Scrubber whose ``rules_id`` it holds: a consumer with the same rules need not check again.
SCRUBBED_HEADER = "mendline.scrubbed"

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
_SEPARATOR = r"""(?:\\?["'])?[ \t]*(?>:=|=>|=(?!=)|:(?!:))[ \t]*+"""
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
# A key split over several strings (a list of lines, frames' lines, fields) is secret from
# its BEGIN line to its END line: these find where one is left open and where it closes.
_PEM_MARKER = re.compile(r"-----(BEGIN|END)[A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY-----")
# Lines of a key's base64 body (and its "Proc-Type: ..." headers), one or more per string.
_PEM_BODY = re.compile(
    # Atomic and possessive throughout: a run of base64 must not be split into lines in
    # every possible way before a failing match gives up.
    r"(?:\s*+(?>[A-Za-z0-9+/]{16,}+={0,2}|[A-Za-z0-9+/]*+={1,2}|[\w-]++: [^\n]*+)\s*+)++",
    re.ASCII,
)
# Only at the start of a run of base64url characters, so that "eyJ-eyJ-..." is not quadratic.
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]*+\.[\w-]++\.[\w-]*+", re.ASCII)
# Query-string and fragment parameters ("?code=...", "#access_token=...", "&sig=..."); names
# and values are judged after URL-decoding.
_URL_PARAM = re.compile(r"(?<=[?&#])(?P<name>[\w.%~+-]{1,64})=(?P<value>[^&#\s\"'<>]*)", re.ASCII)
# Parameters that are secrets in a URL though not as keys elsewhere ("code" is an OAuth
# authorization code in a query string, an error code in a log context).
_SQL_PLACEHOLDER = re.compile(r"%s|\?|\$[0-9]{1,4}|%\(\w+\)s|:\w+", re.ASCII)
_URL_SECRET_NAMES = frozenset(("code", "oauth_verifier"))
# Matched against the text lowercased (see _filter_values), so written in lowercase.
_BEARER = re.compile(rf"\bbearer[ \t]+(?!(?:{_BEARER_PROSE})\b)(?P<value>[\w.~+/-]+=*)", re.ASCII)
# "curl -u bob:hunter2": the value is "user:password", of which user_password filters the part.
_USER_OPTION = re.compile(r"(?<![\w-])(?:-u|--user)(?:[ \t]+|=)(?P<value>[^\s:'\"]+:[^\s'\"]+)")
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
# "order_id=4539...": a key just before the number that says it is an id keeps it.
_KEY_BEFORE = re.compile(r"([A-Za-z_][\w-]{0,63})[\"']?[ \t]*[=:][ \t]*[\"']?$", re.ASCII)
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
    before = _KEY_BEFORE.search(match.string, max(0, match.start() - 72), match.start())
    if before is not None and is_id_number(before.group(1), text.replace(" ", "").replace("-", "")):
        return text
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
    """A regex source matching any of the normalised ``keys``, '-' and '_' alike, longest
    first (so that "authorization" is found whole, not as "auth")."""
    ordered = sorted(set(keys), key=len, reverse=True)
    return "|".join(re.escape(key).replace("_", "[_-]") for key in ordered)


def _is_plain_number(value: str) -> bool:
    return value.isdigit() or value.lower() in ("true", "false")


def _in_string_literal(line: str, at: int, start: int = 0, quote: str = "") -> tuple[int, str]:
    """Scan the source line ``line`` from ``start`` (where the open quote was ``quote``) to
    ``at``: the position reached and the quote open there ("" outside string literals)."""
    index = start
    while index < at:
        char = line[index]
        if char == "\\" and quote:
            index += 2
            continue
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        index += 1
    return index, quote


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
# "bearer <credentials>", JWT, AKIA/ABIA key ids, Slack tokens and app tokens, fine-grained
# GitHub tokens, sk-/sk_/rk_/pk_ keys (OpenAI, Anthropic, Stripe), Twilio SK keys, Slack
# webhooks, Google OAuth client secrets. Each must allow whatever its _credentials row matches.
_RARE_SHAPES = (
    r"egin(?<=_____\x01egin)",
    r"earer[ \t]+[\w\x01.~+/]",
    r"(?<=ey\x01)",
    r"ia(?<=a\x01ia)[a-z0-9\x01]{16}",
    r"o\x01(?<=\x01o\x01)[a\x01eprs][._]",
    r"app_[0-9]_",
    r"_pat_(?<=githu\x01_pat_)",
    r"_(?<=[srp]\x01_)(?<![\w\x01][srp]\x01_)[\w\x01]{10}",
    r"(?<=s\x01)[0-9acdef\x01]{32}",
    r"s\.slac\x01\.com(?<=hoo\x01s\.slac\x01\.com)",
    r"_(?<=gocsp\x01_)",
)
# Shapes without a rare letter, each behind a substring it must contain.
_PLAIN_SHAPES = (
    ("asia", r"asia[a-z0-9\x01]{16}"),
    ("gh", r"gh[pousr]_[a-z0-9\x01]{36}"),
    ("@", r"://[^:/?#@\s]*:[^@/?#\s]+@"),
    ("aiza", r"aiza[\w\x01]{35}"),
    ("sg.", r"sg\.[\w\x01]{16,32}\."),
    ("glpat_", r"glpat_[\w\x01]{20}"),
    ("hf_", r"hf_[a-z0-9\x01]{30}"),
    ("npm_", r"npm_[a-z0-9\x01]{36}"),
    ("pypi_agei", r"pypi_agei"),
    ("ac", r"ac(?<![\w\x01]ac)[0-9acdef\x01]{32}"),
    # URL parameters that are secrets only in URLs, and percent-encoded pairs ("%3Dabc"),
    # which are judged decoded. Each pattern starts with a literal: scanned for quickly.
    ("code=", r"code=(?<=[?&#]code=)"),
    # "-u user:password" and "--user=user:password" (folded: '-' is '_').
    ("_u", r"_(?<![\w\x01]_)(?:_user(?:[ \t]+|=)|u[ \t]+)[^\s:'\"]+:[^\s'\"]"),
    ("oauth_", r"oauth_(?<=[?&#]oauth_)"),
    ("%3d", r"%3d"),
    # A parameter name with a %XX escape ("?%70assword=", "?api%5Fkey="): judged decoded,
    # so no literal key substring can stand for it.
    ("%", r"[?&#;][\w\x01.~+]*+%[0-9a-f\x01]{2}[\w\x01.%~+]*+="),
)
# The trigger looks for keys as substrings followed by a separator, so a key that contains
# another is redundant there ("passphrase" has "pass"), and "cred" stands for "credential"
# and "credit_card" alike: fewer substring checks per string.
_TRIGGER_KEY_STANDINS = {"credential": "cred", "credit_card": "cred", "creditcard": "cred"}


def _trigger_keys(keys: Iterable[str]) -> list[str]:
    """The fewest keys whose substrings find every one of ``keys``."""
    unique = sorted({_TRIGGER_KEY_STANDINS.get(key, key) for key in keys}, key=len)
    kept: list[str] = []
    for key in unique:
        if not any(shorter in key for shorter in kept):
            kept.append(key)
    return kept


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


class _Pem:
    """Whether a private key's BEGIN line was seen and its END line not yet, across strings."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = False


# What _gather looks inside; a dict with one of these keys holds SQL parameters, maybe.
_NESTED = (dict, list, tuple, bytes, bytearray)
_SQL_PARAM_SET = frozenset(SQL_PARAM_KEYS)
_SQL_SET = frozenset(SQL_KEYS)
# Top-level fields of an event that are text, scrubbed like the message.
_NAME_FIELDS = ("service", "environment", "release", "host", "logger", "message")
_EXCEPTION_FIELDS = ("type", "module", "value")
_FRAME_FIELDS = ("filename", "module", "function", "abs_path", "package")


@cache
def _rules_code() -> str | None:
    """The source of the modules that make the scrubbing rules (line endings as Python reads
    them), or None where it cannot be read: an install without sources, say."""
    parts = []
    for name in (__name__, *_RULE_MODULES):
        file = getattr(sys.modules.get(name), "__file__", None)
        if not file or not file.endswith(".py"):
            return None
        try:
            parts.append(Path(file).read_bytes().decode("utf-8").replace("\r\n", "\n"))
        except (OSError, ValueError):
            return None
    return "\x00".join(parts)


#: The modules besides this one whose code decides what is filtered.
_RULE_MODULES = ("mendline.analyzers.grouping._credentials", "mendline.analyzers.grouping._keys")


class Scrubber:
    """Filters secrets from keys and strings; configure once, then call per event.

    ``extra_keys`` are more key names, matched as case-insensitive substrings, '-' and '_'
    alike; ``extra_patterns`` are regular expressions whose whole match is filtered inside
    strings. An invalid pattern raises ConfigError.
    """

    def __init__(self, extra_keys: Iterable[str] = (), extra_patterns: Iterable[str] = ()) -> None:
        extra: list[str] = []
        for key in _as_list(extra_keys, "extra_keys"):
            if not key.strip():
                raise ConfigError("scrubbing: an extra key name is empty, which would match all")
            extra.append(_normalise_key(key.strip()))
        keys = [*ALL_WORDS, *extra]
        self._trigger = _Trigger(_trigger_keys(keys))
        self._words = re.compile(_key_regex(FREE_WORDS))
        self._extra_keys = re.compile(_key_regex(extra)) if extra else None
        # Matched against the text lowercased (see _filter_values); which matches are secrets
        # is decided on the whole key (see _filter_pairs).
        self._pairs = re.compile(
            rf"(?P<key>(?:{_key_regex(keys)}){_KEY_REST}){_SEPARATOR}"
            rf"(?:(?P<esc>\\)?(?P<q>[\"']))?"
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
        self._clean_code: set[str] = set()
        code = _rules_code()
        self.rules_id: str | None = (
            hashlib.sha256(
                "\x00".join(
                    [code, *sorted(extra), "\x01", *(p.pattern for p in self._extra)]
                ).encode("utf-8", "surrogatepass")
            ).hexdigest()[:32]
            if code is not None
            else None
        )
        """What this scrubber filters, as an id: the code of its rules and its extra keys and
        patterns. An event another scrubber with the same id has scrubbed is clean to this one
        (the app's shipper says so in a record header, and the consumer then skips its check).
        None when the rules' code cannot be read."""

    def is_secret_key(self, key: str) -> bool:
        """Whether values under ``key`` are secrets (e.g. "password", "X-Auth-Token").

        A secret word must be a word of the key ("author", "tokenizer" are not), and a key
        that counts, flags or describes ("token_count", "max_tokens", "is_authenticated",
        "session_expired", "auth_method") is not secret; extra keys match as substrings.
        """
        verdict = self._keys_seen.get(key)
        if verdict is None:
            normalised = split_key(key)
            verdict = word_says_secret(normalised, self._words) or (
                self._extra_keys is not None
                and self._extra_keys.search(_normalise_key(key)) is not None
            )
            if len(self._keys_seen) >= _KEY_CACHE_SIZE:
                self._keys_seen.clear()
            self._keys_seen[key] = verdict
        return verdict

    def scrub_text(self, text: str) -> str:
        """Return ``text`` with every secret found in it replaced by FILTERED."""
        return self._cached(text, code=False)

    def scrub_value(self, value: Any) -> Any:
        """Return a scrubbed copy of a JSON-like value; the input is never modified.

        Dicts get new dicts (values under secret keys filtered whole, but numbers and
        booleans only under keys that name the secret), lists and tuples become new lists
        (in a list of 2-item pairs, the second item of a pair named by a secret key is
        filtered; in argv-like lists, the item after "--password", "--token", "-p"...; the
        parameters of a SQL statement at the positions of secret columns), bytes are checked
        decoded as UTF-8, strings are scrubbed as text, anything else is returned as it is.
        A private key is filtered from its BEGIN line to its END line across strings.
        """
        return self._value(value, 0, _Pem())

    def is_clean(self, event: dict[str, Any]) -> bool:
        """Whether scrub_event would leave ``event`` as it is. Cheap in the usual case (one
        quick check over all its strings); exact: when the quick check cannot tell, it works
        out what scrub_event would change, without changing anything."""
        return self._quick_clean(event) or not self._changes(event)

    def scrub_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Scrub an ErrorEvent v1 wire dict in place, and return it.

        Every text field is scrubbed where it is: service, environment, release, host,
        logger, message; each exception's type, module and value; each frame's filename,
        module, function and "context_line" (source code: only literal values there, never
        identifiers such as ``token = request.headers.get(...)``). "context" and "tags" are
        replaced by scrubbed copies (a tag under a secret key becomes FILTERED; keys are
        scrubbed as text too), and so is a custom "fingerprint". Fields that are missing or
        of another type are left alone. When nothing in the event can hold a secret, which
        is the usual case, it is not written to at all.
        """
        self.scrub(event)
        return event

    def scrub(self, event: dict[str, Any]) -> bool:
        """scrub_event, saying whether anything in ``event`` changed."""
        if self._quick_clean(event):
            return False
        changes = self._changes(event)
        for container, key, value in changes:
            container[key] = value
        return bool(changes)

    def _quick_clean(self, event: dict[str, Any]) -> bool:
        """True only if nothing in ``event`` can hold a secret (False may be a false alarm)."""
        if self._extra:
            return self._quick_clean_each(event)
        # Names that recur together (a service's names; a frame's file, module and function)
        # are checked and remembered as one string, joined by newlines, which no built-in
        # check matches across. A field that is not a string shows as its repr: at worst a
        # false alarm, which the exact check in is_clean then settles.
        get = event.get
        texts = [
            f"{get('service')}\n{get('environment')}\n{get('release')}\n{get('host')}"
            f"\n{get('logger')}"
        ]
        message = get("message")
        if isinstance(message, str):
            texts.append(message)
        append = texts.append
        exceptions = get("exceptions")
        if isinstance(exceptions, list):
            clean, clean_code = self._clean, self._clean_code
            for exc in exceptions:
                if not isinstance(exc, dict):
                    continue
                eget = exc.get
                append(f"{eget('type')}\n{eget('module')}")
                value = eget("value")
                if isinstance(value, str):
                    append(value)
                frames = eget("frames")
                if isinstance(frames, list):
                    for frame in frames:
                        if isinstance(frame, dict):
                            fget = frame.get
                            append(_frame_names(fget))
                            line = fget("context_line")
                            if (
                                isinstance(line, str)
                                and line not in clean
                                and line not in clean_code
                            ):
                                append(line)
        return self._rest_clean(event, texts)

    def _quick_clean_each(self, event: dict[str, Any]) -> bool:
        """_quick_clean for user patterns, which may use ^ and $: each string on its own."""
        texts: list[str] = []
        for name in _NAME_FIELDS:
            _add(texts, event.get(name))
        exceptions = event.get("exceptions")
        if isinstance(exceptions, list):
            for exc in exceptions:
                if not isinstance(exc, dict):
                    continue
                for name in _EXCEPTION_FIELDS:
                    _add(texts, exc.get(name))
                frames = exc.get("frames")
                if isinstance(frames, list):
                    for frame in frames:
                        if isinstance(frame, dict):
                            for name in _FRAME_FIELDS:
                                _add(texts, frame.get(name))
                            line = frame.get("context_line")
                            if isinstance(line, str) and line not in self._clean_code:
                                texts.append(line)
        return self._rest_clean(event, texts)

    def _rest_clean(self, event: dict[str, Any], texts: list[str]) -> bool:
        """The quick check's end: context, tags and fingerprint, then all ``texts``."""
        return (
            self._gather(event.get("context"), texts, 0)
            and self._gather(event.get("tags"), texts, 0)
            and self._gather(event.get("fingerprint"), texts, 0)
            and self._all_clean(texts)
        )

    def _changes(self, event: dict[str, Any]) -> list[tuple[Any, str, Any]]:
        """What scrub_event changes in ``event``: (the dict, the key, the new value) each."""
        changes: list[tuple[Any, str, Any]] = []
        pem = _Pem()

        def field(container: dict[str, Any], name: str, code: bool = False) -> None:
            value = container.get(name)
            if isinstance(value, str):
                scrubbed = self._text(value, pem, code)
                if scrubbed != value:
                    changes.append((container, name, scrubbed))

        for name in _NAME_FIELDS:
            field(event, name)
        exceptions = event.get("exceptions")
        if isinstance(exceptions, list):
            for exc in exceptions:
                if not isinstance(exc, dict):
                    continue
                for name in _EXCEPTION_FIELDS:
                    field(exc, name)
                frames = exc.get("frames")
                if isinstance(frames, list):
                    for frame in frames:
                        if isinstance(frame, dict):
                            fget = frame.get
                            # A frame's names checked together, as the quick check does.
                            if pem.open or self._extra or not self._all_clean([_frame_names(fget)]):
                                for name in _FRAME_FIELDS:
                                    field(frame, name)
                            field(frame, "context_line", code=True)
        for name in ("context", "tags"):
            if name in event:
                value = event[name]
                scrubbed = self._value(value, 0, pem)
                if scrubbed != value:
                    changes.append((event, name, scrubbed))
        fingerprint = event.get("fingerprint")
        if isinstance(fingerprint, list):
            parts = [self._text(p, pem, False) if isinstance(p, str) else p for p in fingerprint]
            if parts != fingerprint:
                changes.append((event, "fingerprint", parts))
        return changes

    def _gather(self, value: Any, texts: list[str], depth: int) -> bool:
        """Collect the strings inside ``value``; False if it has a secret key, a structure
        that may hide one (pairs, argv flags, SQL parameters), or is too deep."""
        if isinstance(value, dict):
            if depth >= _MAX_DEPTH:
                return False
            if not _SQL_PARAM_SET.isdisjoint(value) and not _SQL_SET.isdisjoint(value):
                return False  # a statement and its parameters: the statement judges them
            if named_secret_value(value, self.is_secret_key) is not None:
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
                elif isinstance(item, _NESTED) and not self._gather(item, texts, depth + 1):
                    return False
        elif isinstance(value, list | tuple):
            if depth >= _MAX_DEPTH:
                return False
            program = _program(value)
            for item in value:
                if isinstance(item, str):
                    if item[:1] == "-" and (
                        argv_flag(item, program, self.is_secret_key)
                        or attached_password(item, program) is not None
                    ):
                        return False
                    texts.append(item)
                elif isinstance(item, list | tuple) and sequence_of_pairs(item):
                    name = item[0]
                    if isinstance(name, bytes | bytearray):
                        name = bytes(name).decode("utf-8", "replace")
                    if self.is_secret_key(name) or not self._gather(item, texts, depth + 1):
                        return False
                elif isinstance(item, _NESTED) and not self._gather(item, texts, depth + 1):
                    return False
        elif isinstance(value, str):
            texts.append(value)
        elif isinstance(value, bytes | bytearray):
            texts.append(bytes(value).decode("utf-8", "replace"))
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

    def _cached(self, text: str, code: bool) -> str:
        """``text`` scrubbed (as a source line if ``code``), with the clean-string caches."""
        remembered = self._clean_code if code else self._clean
        if text in remembered or self._all_clean([text]):
            return text
        scrubbed = self._scrub_text(text, code)
        if scrubbed == text and len(text) <= _CLEAN_MAX_LEN:
            # A false alarm, such as "token_count=42" or, in a source line, "session = ..."
            if len(remembered) >= _CLEAN_CACHE_SIZE:
                remembered.clear()
            remembered.add(text)
        return scrubbed

    def _text(self, text: str, pem: _Pem, code: bool) -> str:
        """Scrub one string of a sequence of strings, in which a private key may be open."""
        if pem.open:
            end = _PEM_END.search(text)
            if end is not None:
                pem.open = False
                rest = text[end.end() :]
                return FILTERED + (self._text(rest, pem, code) if rest else "")
            if _PEM_BODY.fullmatch(text) is not None:
                return FILTERED
            # Not a line of the key (a file name between two source lines, say): kept, and
            # the key stays open for the strings after it.
        scrubbed = self._cached(text, code)
        if "PRIVATE KEY-----" in text:
            markers = _PEM_MARKER.findall(text)
            pem.open = bool(markers) and markers[-1] == "BEGIN"
        return scrubbed

    def _scrub_text(self, text: str, code: bool = False) -> str:
        # The substring checks only decide what to run: replacing secrets by FILTERED never
        # makes one of them true, so they may look at the text as it was at the start.
        lower = _ascii_lower(text)
        original = text
        if "-----begin" in lower:
            text = _PEM.sub(FILTERED, text)
        if "eyj" in lower:
            text = _JWT.sub(FILTERED, text)
        for credential in CREDENTIALS:
            if credential.needle in lower:
                text = _filter_credential(credential.pattern, text)
        if text != original:
            lower = _ascii_lower(text)
        scrubbed = self._filter_pairs(text, lower, code)
        if "bearer" in lower:
            scrubbed = _filter_values(_BEARER, scrubbed, _ascii_lower(scrubbed))
        if "://" in lower:
            scrubbed = _filter_values(_URL_PASSWORD, scrubbed, scrubbed)
        if "-u" in lower:
            scrubbed = _filter_user_option(scrubbed, _ascii_lower(scrubbed))
        if "=" in scrubbed and ("?" in scrubbed or "#" in scrubbed or "&" in scrubbed):
            scrubbed = self._filter_url_params(scrubbed, code)
        scrubbed = _CARD.sub(_filter_card, scrubbed)
        for pattern in self._extra:
            scrubbed = pattern.sub(FILTERED, scrubbed)
        return scrubbed

    def _filter_pairs(self, text: str, lower: str, code: bool) -> str:
        """Filter the values of ``key=value`` and ``key: value`` pairs whose key is secret.

        The key is judged whole, from its first character: "token_count=42" and
        "author=bob" stay. In a source line (``code``), only values in string literals go:
        ``token = request.headers.get("X-Token")`` is code, ``token = "abc"`` is a secret.
        """
        pieces: list[str] = []
        last = 0
        scanned, quote = 0, ""  # how far the line was scanned for string literals
        for match in self._pairs.finditer(lower):
            start = match.start()
            while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-"):
                start -= 1
            key = text[start : match.end("key")]
            if not self.is_secret_key(key):
                continue
            value_start, value_end = match.span("value")
            value = text[value_start:value_end]
            if _is_plain_number(value) and not names_secret_exactly(key):
                continue
            if _SQL_PLACEHOLDER.fullmatch(value) is not None:
                continue  # "SET password = %s": the statement, not the secret
            if code and value[:1] == "{":
                continue  # f"password={pw}": a placeholder, filled in at run time
            if code and match.group("q") is None:
                # Matches come in order, so the scan goes on from the last one: linear.
                scanned, quote = _in_string_literal(text, value_start, scanned, quote)
                if not quote:
                    continue
            pieces += (text[last:value_start], FILTERED)
            last = value_end
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def _filter_url_params(self, text: str, code: bool = False) -> str:
        """Filter query-string and fragment parameters that are secrets, judged URL-decoded:
        by name ("X-Amz-Signature", "code", "access%5Ftoken"), or by a decoded value that holds
        a secret ("redirect=https%3A%2F%2Fx%2F%3Ftoken%3Dabc"). In a source line (``code``),
        a value that is a placeholder (f"?token={token}") is code."""

        def judge(match: re.Match[str]) -> str:
            raw_name, value = match.group("name", "value")
            if not value or value == FILTERED or (code and value[:1] == "{"):
                return match.group()
            name = unquote_plus(raw_name) if "%" in raw_name or "+" in raw_name else raw_name
            if name.lower() in _URL_SECRET_NAMES or self.is_secret_key(name):
                if not (_is_plain_number(value) and not names_secret_exactly(name)):
                    return f"{raw_name}={FILTERED}"
            elif "%" in value:
                decoded = unquote_plus(value)
                if decoded != value and self.scrub_text(decoded) != decoded:
                    return f"{raw_name}={FILTERED}"
            return match.group()

        return _URL_PARAM.sub(judge, text)

    def _value(self, value: Any, depth: int, pem: _Pem) -> Any:
        if isinstance(value, str):
            return self._text(value, pem, False)
        if isinstance(value, dict):
            if depth >= _MAX_DEPTH:
                return FILTERED
            return self._dict(value, depth, pem)
        if isinstance(value, list | tuple):
            if depth >= _MAX_DEPTH:
                return FILTERED
            return self._list(value, depth, pem)
        if isinstance(value, bytes | bytearray):
            # The app side may hand over raw header bytes; they are text to check.
            decoded = bytes(value).decode("utf-8", "replace")
            scrubbed = self._text(decoded, pem, False)
            return value if scrubbed == decoded else scrubbed
        return value

    def _dict(self, value: dict[Any, Any], depth: int, pem: _Pem) -> dict[Any, Any]:
        sql = sql_secret_positions(value, self.is_secret_key)
        named = named_secret_value(value, self.is_secret_key)
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                out[key] = self._value(item, depth + 1, pem)
                continue
            name = self._cached(key, False)  # a name, never a line of a key
            if self.is_secret_key(key):
                out[name] = _secret(key, item)
            elif named is not None and key == named[0]:
                out[name] = _secret(named[1], item)
            elif sql is not None and key == sql[0]:
                positions = sql[1]
                out[name] = [
                    FILTERED if index in positions else self._value(param, depth + 2, pem)
                    for index, param in enumerate(item)
                ]
            elif isinstance(item, str) and is_id_number(key, item):
                out[name] = item
            else:
                out[name] = self._value(item, depth + 1, pem)
        return out

    def _list(self, value: list[Any] | tuple[Any, ...], depth: int, pem: _Pem) -> list[Any]:
        out: list[Any] = []
        flag = ""  # the secret argv flag just seen, whose next item is (or holds) its value
        program = _program(value)
        for item in value:
            if flag:
                text = item
                if isinstance(text, bytes | bytearray):
                    text = bytes(text).decode("utf-8", "replace")
                replaced = argv_value(flag, text) if isinstance(text, str) else None
                flag = ""
                if replaced is not None:
                    out.append(replaced)
                    continue
            if isinstance(item, str):
                if item[:1] == "-":
                    flag = argv_flag(item, program, self.is_secret_key)
                    attached = attached_password(item, program)
                    if attached is not None:
                        out.append(attached)
                        continue
                out.append(self._text(item, pem, False))
            elif isinstance(item, list | tuple) and sequence_of_pairs(item):
                name = item[0]
                if isinstance(name, bytes | bytearray):
                    name = bytes(name).decode("utf-8", "replace")
                if self.is_secret_key(name):
                    out.append([self._value(item[0], depth + 2, pem), _secret(name, item[1])])
                else:
                    out.append(self._value(item, depth + 1, pem))
            else:
                out.append(self._value(item, depth + 1, pem))
        return out


def _program(argv: list[Any] | tuple[Any, ...]) -> str:
    """The basename of argv[0] ("redis-cli"), or "" when ``argv`` does not start with a str."""
    first = argv[0] if argv else None
    return first.rsplit("/", 1)[-1] if isinstance(first, str) else ""


def _filter_user_option(text: str, lower: str) -> str:
    """Filter the password of "-u user:password" and "--user=user:password" in text."""
    pieces: list[str] = []
    last = 0
    for match in _USER_OPTION.finditer(lower):
        start, end = match.span("value")
        replaced = user_password(text[start:end])
        if replaced is not None:
            pieces += (text[last:start], replaced)
            last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _add(texts: list[str], value: Any) -> None:
    if isinstance(value, str):
        texts.append(value)


def _secret(key: str, value: Any) -> Any:
    """What becomes of ``value`` under the secret key ``key``."""
    if names_secret_exactly(key):
        return FILTERED
    if isinstance(value, bool | int | float):
        return value  # a number or a flag under "tokens", "auth_ok": no secret in it
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(item, bool | int | float) for item in value)
    ):
        return value  # "tokens": [1, 2, 3], token ids: numbers, element by element
    return FILTERED


def _filter_credential(pattern: re.Pattern[str], text: str) -> str:
    if "value" in pattern.groupindex:
        return _filter_values(pattern, text, text)
    return pattern.sub(FILTERED, text)


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


_CHILD_SCRUBBER: Scrubber | None = None


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` fit for a program mendline runs for someone else (a fix's verification
    commands, a remediation's command): without mendline's settings (every ``MENDLINE_*``),
    without a variable whose name says it is a secret (``*_TOKEN``, ``*PASSWORD*``,
    ``API_KEY``...) or whose value holds one (a URL's password, a credential's shape)."""
    global _CHILD_SCRUBBER
    if _CHILD_SCRUBBER is None:
        _CHILD_SCRUBBER = Scrubber()
    scrubber = _CHILD_SCRUBBER
    return {
        name: value
        for name, value in environ.items()
        if not name.upper().startswith("MENDLINE_")
        and not scrubber.is_secret_key(name)
        and scrubber.scrub_text(value) == value
    }


def _frame_names(fget: Callable[[str], Any]) -> str:
    """A frame's names as one text for the quick check: its file, module and function, and
    the absolute path and package of frames converted from other languages' SDKs."""
    names = f"{fget('filename')}\n{fget('module')}\n{fget('function')}"
    abs_path, package = fget("abs_path"), fget("package")
    if abs_path is None and package is None:  # every Python frame: no more to look at
        return names
    return f"{names}\n{abs_path}\n{package}"
