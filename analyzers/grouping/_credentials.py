"""Credentials recognised by their shape, as data: one row per provider, with a real-shaped
fake that must be filtered and a near miss that must stay (the tests read both).

Shapes follow the providers' documented token formats as secret scanners list them (GitHub
secret scanning partners, gitleaks); a row's ``needle`` is a lowercase literal every match
contains, checked before the regex runs. A regex with a group named "value" has only that group
filtered (the words around it say what it is); otherwise the whole match goes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["CREDENTIALS", "Credential"]


class Credential(NamedTuple):
    """One provider's credential shape."""

    provider: str
    needle: str
    pattern: re.Pattern[str]
    example: str
    near_miss: str


# Not inside a longer token: no word character or '-' right before.
_START = r"(?<![\w-])"
_END = r"(?![\w-])"


def _row(provider: str, needle: str, pattern: str, example: str, near_miss: str) -> Credential:
    return Credential(provider, needle, re.compile(pattern, re.ASCII), example, near_miss)


CREDENTIALS: tuple[Credential, ...] = (
    _row(
        "Anthropic API key",
        "sk-ant-",
        _START + r"sk-ant-(?:api|admin|sid|oat)[0-9]{2}-[\w-]{20,}",
        "sk-ant-api03-" + "Xy7Qk2mN9pLr4TfWb8Zc1Vd6Hs3Jg5Ka0Me_" * 2 + "AA",
        "sk-ant-colony simulation",
    ),
    _row(
        "OpenAI API key",
        "sk-",
        # Project, service-account and admin keys, and the older 48 characters after "sk-".
        _START + r"sk-(?:(?:proj|svcacct|admin|None)-[\w-]{20,}|[A-Za-z0-9]{32,})" + _END,
        "sk-proj-"
        + "Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9Vw1Xy3Za5Bc7"
        + "T3BlbkFJ"
        + "Qw8Er6Ty4Ui2Op0As8Df6",
        "from sk-learn-pipeline import Thing",
    ),
    _row(
        "Google API key",
        "aiza",
        r"AIza[\w-]{35}" + _END,
        "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        "AIzaShort",
    ),
    _row(
        "Google OAuth client secret",
        "gocspx-",
        r"GOCSPX-[\w-]{20,}",
        "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",
        "GOCSPX-short",
    ),
    _row(
        "AWS secret access key",
        "secret",
        r"(?i:aws_?secret_?access_?key)[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key_id_rotation_days = 90",
    ),
    _row(
        "Azure storage account key",
        "accountkey=",
        r"(?i:accountkey)=(?P<value>[A-Za-z0-9+/]{20,}={0,2})",
        "DefaultEndpointsProtocol=https;AccountName=acme;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=acme;EndpointSuffix=core.windows.net",
    ),
    _row(
        "Azure shared access signature",
        "sig=",
        r"(?<![\w-])sig=(?P<value>[\w%+/=-]{10,})",
        "SharedAccessSignature=sv=2022-11-02&ss=b&srt=co&sp=r&se=2030-01-01T00:00:00Z"
        "&sig=p9k3Xv0yTq%2BZr1wO8mN4bL7cD2eF6gH5iJ0kL3mN9o%3D",
        "design=simple&signal=9",
    ),
    _row(
        "Slack token",
        "xox",
        r"xox[abeprs][.-][A-Za-z0-9.-]{8,}",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxo from the team",
    ),
    _row(
        "Slack app-level token",
        "xapp-",
        _START + r"xapp-[0-9]-[A-Za-z0-9-]{10,}",
        "xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef",
        "xapp-1 is the app name",
    ),
    _row(
        "Slack webhook URL",
        "hooks.slack.com",
        r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[\w/+-]{20,}",
        "https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/AbCdEfGhIjKlMnOpQrStUvWx",
        "see https://hooks.slack.com/ for the docs",
    ),
    _row(
        "SendGrid API key",
        "sg.",
        _START + r"SG\.[\w-]{16,32}\.[\w-]{16,64}",
        "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",
        "SG.1.2 firmware",
    ),
    _row(
        "Twilio API key or account SID",
        "",
        r"\b(?:SK|AC)[0-9a-fA-F]{32}\b",
        "SK2a0747c1ba9bd4b3c1cbd23f7e9a1c4f",
        "SKU 2a0747c1ba9bd4b3 not found",
    ),
    _row(
        "Stripe key (live or test, secret, restricted or publishable)",
        "k_",
        _START + r"[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "desk_test_suite failed",
    ),
    _row(
        "GitLab personal access token",
        "glpat-",
        r"glpat-[\w-]{20,}",
        "glpat-xYz1AbC2dEf3GhI4jKl5",
        "glpat-short",
    ),
    _row(
        "Hugging Face token",
        "hf_",
        _START + r"hf_[A-Za-z0-9]{30,}" + _END,
        "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH",
        "hf_hub_download failed",
    ),
    _row(
        "npm access token",
        "npm_",
        _START + r"npm_[A-Za-z0-9]{36}" + _END,
        "npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "npm_config_cache is unset",
    ),
    _row(
        "PyPI upload token",
        "pypi-",
        r"pypi-AgEIcHlwaS5vcmc[\w-]{50,}",
        "pypi-AgEIcHlwaS5vcmc" + "CJDY2ZjM5ZTVhLTFmNjMtNGU3Ni1iNzYyLWU0ZTcwY2Q0M2I0NgACKl" * 2,
        "pypi-simple index",
    ),
    _row(
        "GitHub token",
        "gh",
        r"gh[pousr]_[A-Za-z0-9]{36,}",
        "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A",
        "ghp_short",
    ),
    _row(
        # A row of its own: "github_pat_" does not hold the needle "gh".
        "GitHub fine-grained personal access token",
        "github_pat_",
        r"github_pat_\w{22,}",
        "github_pat_11ABCDEF0123456789abc_"
        + "abcdefijklmnopqrstuvwxyz0123456789ABCDEFIJKLMNOPQRSTUVW",
        "github_pat_ is how its tokens start",
    ),
    # Last: the tokens above may have ended a word.
    _row(
        "AWS access key id",
        "a",
        r"\b(?:AKIA|ASIA|ABIA)[A-Z0-9]{16}\b",
        "AKIAIOSFODNN7EXAMPLE",
        "AKIA1234 is too short",
    ),
)
