"""Secrets out of what mendline shows of its own settings: the password of a URL or DSN, secret
query parameters, the secret path of a webhook URL, and any value known to be secret."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["FILTERED", "redact_url", "url_secrets"]

#: What stands in for a secret, in what mendline prints and in the events it scrubs.
FILTERED = "[Filtered]"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# What may follow the '@' that ends a URL's user info: a host (a name, an address, an IPv6
# literal, or nothing before a path as in libpq's postgresql://u:p@/db?host=/socket), a port,
# then the end of the authority. '#' is not an end: a fragment after a host is unheard of in a
# DSN, while '#' in a password people paste unescaped is common.
# A port is taken as written (a mistyped one is still the end of the user info).
_HOST = re.compile(r"(?P<host>\[[0-9A-Za-z:.%]*\]|[A-Za-z0-9._~%-]*)(?P<port>:[^/?#@\s,;]*)?")
_AUTHORITY_END = frozenset("/?,;)]}>'\"")
# A Kafka bootstrap list (no scheme) written with user info: user:password@host:port.
_BARE_USERINFO = re.compile(r"(?:^|(?<=[\s,;=(\"']))(?P<user>[\w.+-]+):(?P<secret>[^\s@,/]+)@")
# Query parameters (and key=value pairs) whose value is a credential: API keys, tokens,
# passwords, signatures, as Azure, Google and signed URLs spell them.
_SECRET_PARAM = re.compile(
    r"(?i)(?P<name>[?&;](?:[\w.-]*[_.-])?"
    r"(?:key|apikey|token|secret|password|passwd|pwd|sig|signature|credential|auth))"
    r"=(?P<secret>[^&#\s'\"]+)"
)
# libpq keyword DSNs (host=h password=secret dbname=x), a value quoted with '...' and \' in it,
# or unquoted with backslash escapes (password=my\ secret is one value to libpq).
_KEYWORD_PASSWORD = re.compile(
    r"(?i)(?P<name>\b(?:password|passwd|pwd|sslpassword)[ \t]*=[ \t]*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'?|(?:\\.|[^\s'&,;\\])+\\?)"
)
# Webhook URLs whose path is the credential.
_SECRET_PATH = re.compile(
    r"(?i)(?P<name>hooks\.slack\.com/(?:services|workflows|triggers)/|"
    r"events\.pagerduty\.com/integration/)(?P<secret>[^\s?#'\"]+)"
)


def _at_authority_end(region: str, start: int) -> bool:
    """Whether a host (and a port) starting at ``start`` of ``region`` ends an authority."""
    found = _HOST.match(region, start)
    assert found is not None  # every part of the pattern may be empty
    end = found.end()
    if end == len(region):
        return bool(found.group("host") or found.group("port"))
    char = region[end]
    if not found.group("host") and not found.group("port"):
        return char in "/?"
    return char in _AUTHORITY_END or char.isspace()


def _userinfo_end(region: str) -> int | None:
    """Where the user info of the URL whose authority starts ``region`` ends (its '@'), or
    None when it has none.

    A password people write as it is may hold '@', '#', '/', ':' and spaces, so the '@' that
    ends it is the last one in the first word that a host follows; failing that, one in a
    later word, unless the first word was already a whole host and path (the URL ended there);
    failing that, the last '@' of the first word (no host follows it: u:p@ss#word).
    """
    first_space = next((i for i, c in enumerate(region) if c.isspace()), len(region))
    ends = [i for i, c in enumerate(region) if c == "@" and _at_authority_end(region, i + 1)]
    in_first = [i for i in ends if i < first_space]
    if in_first:
        return in_first[-1]
    word = region[:first_space]
    later = [i for i in ends if i > first_space and "/" not in word and "?" not in word]
    if later:
        return later[0]
    return word.rfind("@") if "@" in word else None


def _userinfo_spans(text: str) -> list[tuple[int, int]]:
    """Where the secret parts of URL user info are in ``text``."""
    spans = []
    for scheme in _SCHEME.finditer(text):
        start = scheme.end()
        line_end = text.find("\n", start)
        limit = len(text) if line_end < 0 else line_end
        following = _SCHEME.search(text, start, limit)
        if following is not None:
            limit = following.start()
        region = text[start:limit]
        at = _userinfo_end(region)
        if at is None:
            continue
        userinfo = region[:at]
        colon = userinfo.find(":")
        user = userinfo[:colon] if colon >= 0 else userinfo
        if colon >= 0 and not any(c.isspace() or c in "/?#" for c in user):
            spans.append((start + colon + 1, start + at))  # keep the user name
        elif colon >= 0 or scheme.group().lower() in ("http://", "https://"):
            # A bare user info on the web is a token (https://TOKEN@host); a user name that
            # is not one is not worth guessing at.
            spans.append((start, start + at))
    for bare in _BARE_USERINFO.finditer(text):
        after = bare.end()
        if _at_authority_end(text, after) and not any(
            start <= bare.start("secret") < end for start, end in spans
        ):
            spans.append(bare.span("secret"))
    return sorted(spans)


def _secret_spans(text: str) -> list[tuple[int, int]]:
    spans = _userinfo_spans(text)
    for pattern in (_SECRET_PARAM, _KEYWORD_PASSWORD, _SECRET_PATH):
        spans += [m.span("secret") for m in pattern.finditer(text)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def url_secrets(text: str) -> list[str]:
    """The secret values :func:`redact_url` finds in ``text``, each also percent-decoded and
    unquoted (as a driver may repeat them in its own error messages)."""
    found: list[str] = []
    for start, end in _secret_spans(text):
        value = text[start:end]
        found += [value, unquote(value)]
        if len(value) >= 2 and value[0] == value[-1] == "'":
            found.append(value[1:-1].replace("\\'", "'").replace("\\\\", "\\"))
    return list(dict.fromkeys(found))


def redact_url(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the secrets of every URL-like setting in it replaced by ``[Filtered]``.

    Filtered: the password of a URL's user info (``postgresql://u:[Filtered]@h:5432/db``, also
    when written unescaped with '@', '#', '/', ':' or spaces), a whole user info on http(s)
    (a token), the same in a Kafka bootstrap list (``user:pass@host:9092``), the values of
    secret query parameters (``?key=``, ``api_key=``, ``token=``, ``sig=``...) and of libpq
    keyword DSNs (``password=secret``, ``password='a b'``), the secret path of Slack and
    PagerDuty webhook URLs, and each of ``secrets`` (exact values; under 4 characters they
    are not looked for, as they would filter ordinary words). User names, hosts, ports and
    database names are kept. ``text`` may be a whole message or traceback.
    """
    for start, end in reversed(_secret_spans(text)):
        text = text[:start] + FILTERED + text[end:]
    known = sorted({s for s in secrets if len(s) >= 4 and s != FILTERED}, key=len, reverse=True)
    if known:  # longest first, so that a secret containing another is filtered whole
        text = re.sub("|".join(map(re.escape, known)), FILTERED, text)
    return text
