"""The heuristic analyser on other languages' events (Node, Java, Go, .NET, Ruby, PHP, as their
Sentry SDKs send them): the outages, timeouts, HTTP answers and configuration errors it knows
from Python, told by those languages' own types and words; Python events read as before."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mendline.analyzers.grouping.fingerprint import culprit, title
from mendline.analyzers.rootcause.heuristic import RULES, HeuristicAnalyser, Matcher, Rule
from mendline.schemas.finding import Finding, IssueContext, IssueSummary

from .platform_events import event as sdk_event

ANALYSER = HeuristicAnalyser()
OUTAGE, CONFIG = "dependency_outage_or_timeout", "configuration"
CURL_HELP = " (see https://curl.haxx.se/libcurl/c/libcurl-errors.html)"
DOTNET_HTTP = "System.Net.Http, Version=8.0.0.0, Culture=neutral, PublicKeyToken=b03f5f7f11d50a3a"


def event(platform: str | None, type_: str, value: str, module: str | None = None) -> dict:
    """An event of ``platform`` raising ``type_`` from an in-app frame (no source line)."""
    frame = {"filename": "orders.x", "module": "shop.orders", "function": "place", "in_app": True}
    doc = sdk_event(platform or "python", type_, value, [frame], module=module)
    if platform is None:
        del doc["platform"]
    return doc


def diagnose(doc: dict[str, Any], analyser: HeuristicAnalyser = ANALYSER) -> Finding:
    issue = IssueSummary(
        id=1, service="shop", level="error", times_seen=1, title=title(doc), culprit=culprit(doc)
    )
    return analyser.diagnose(IssueContext(issue=issue, events=[doc]))


# (platform, type, module, value, rule, category, words the root cause names)
CASES: list[tuple[str, str, str | None, str, str, str, tuple[str, ...]]] = [
    # Node
    ("node", "Error", None, "connect ECONNREFUSED 127.0.0.1:5432", "connection-refused", OUTAGE,
     ("127.0.0.1:5432",)),
    ("node", "Error", None, "connect ETIMEDOUT 10.0.0.5:443", "connect-timeout", OUTAGE,
     ("10.0.0.5:443",)),
    ("node", "Error", None, "read ECONNRESET", "connection-reset", OUTAGE, ()),
    ("node", "Error", None, "socket hang up", "connection-reset", OUTAGE, ()),
    ("node", "AxiosError", None, "timeout of 5000ms exceeded", "read-timeout", OUTAGE, ()),
    ("node", "AxiosError", None, "Request failed with status code 503", "http-server-error",
     OUTAGE, ("HTTP 503",)),
    ("node", "AxiosError", None, "Request failed with status code 401", "http-auth", CONFIG,
     ("HTTP 401",)),
    ("node", "HTTPError", None, "Response code 429 (Too Many Requests)", "http-rate-limited",
     "resource_exhaustion", ("429",)),
    ("node", "Error", None, "getaddrinfo ENOTFOUND orders-db.internal", "dns-unknown-host", CONFIG,
     ("orders-db.internal",)),
    ("node", "Error", None, "getaddrinfo EAI_AGAIN orders-db.internal", "dns-temporary", OUTAGE,
     ("orders-db.internal",)),
    ("node", "Error", None, "self-signed certificate in certificate chain", "ssl-cert-verify",
     CONFIG, ("self-signed certificate in certificate chain",)),
    ("node", "Error", None, "ENOENT: no such file or directory, open '/etc/shop/config.json'",
     "file-not-found", CONFIG, ("'/etc/shop/config.json'",)),
    ("node", "Error", None, "EACCES: permission denied, open '/var/log/shop.log'",
     "permission-denied", CONFIG, ("'/var/log/shop.log'",)),
    ("node", "TimeoutError", None, "The operation was aborted due to timeout", "timeout", OUTAGE,
     ()),
    # Java
    ("java", "ConnectException", "java.net", "Connection refused", "connection-refused", OUTAGE,
     ()),
    ("java", "SocketTimeoutException", "java.net", "Read timed out", "read-timeout", OUTAGE, ()),
    ("java", "SocketTimeoutException", "java.net", "connect timed out", "connect-timeout", OUTAGE,
     ()),
    ("java", "SocketTimeoutException", "java.net", "timeout", "timeout", OUTAGE, ()),
    ("java", "TimeoutException", "java.util.concurrent", "Waited 30 seconds for quote",
     "timeout", OUTAGE, ()),
    ("java", "UnknownHostException", "java.net", "orders-db.internal", "dns-unknown-host", CONFIG,
     ("orders-db.internal",)),
    ("java", "HttpServerErrorException$ServiceUnavailable", "org.springframework.web.client",
     "503 Service Unavailable: [no body]", "http-server-error", OUTAGE, ("HTTP 503",)),
    ("java", "HttpClientErrorException$NotFound", "org.springframework.web.client",
     '404 Not Found: "{"error":"no such order"}"', "http-not-found", "bad_input", ("HTTP 404",)),
    ("java", "FeignException$Forbidden", "feign",
     "[403 Forbidden] during [GET] to [http://quotes.internal/v1/quote] [QuoteClient#quote()]: []",
     "http-auth", CONFIG, ("http://quotes.internal/v1/quote", "HTTP 403")),
    ("java", "SSLHandshakeException", "javax.net.ssl",
     "PKIX path building failed: sun.security.provider.certpath.SunCertPathBuilderException: "
     "unable to find valid certification path to requested target", "ssl-cert-verify", CONFIG,
     ("unable to find valid certification path",)),
    ("java", "PSQLException", "org.postgresql.util", "FATAL: sorry, too many clients already",
     "db-too-many-connections", "resource_exhaustion", ()),
    ("java", "FileNotFoundException", "java.io", "/etc/shop/app.conf (No such file or directory)",
     "file-not-found", CONFIG, ("/etc/shop/app.conf",)),
    # Go
    ("go", "*net.OpError", None, "dial tcp 127.0.0.1:5432: connect: connection refused",
     "connection-refused", OUTAGE, ("127.0.0.1:5432",)),
    ("go", "*net.OpError", None, "dial tcp 10.0.0.5:443: i/o timeout", "connect-timeout", OUTAGE,
     ("10.0.0.5:443",)),
    ("go", "*url.Error", None, 'Get "http://quotes.internal/v1/quote": context deadline exceeded '
     "(Client.Timeout exceeded while awaiting headers)", "read-timeout", OUTAGE,
     ("http://quotes.internal/v1/quote",)),
    ("go", "context.deadlineExceededError", None, "context deadline exceeded", "timeout", OUTAGE,
     ()),
    ("go", "*net.DNSError", None, "lookup orders-db.internal on 127.0.0.11:53: no such host",
     "dns-unknown-host", CONFIG, ("orders-db.internal",)),
    ("go", "*errors.errorString", None, "unexpected status code: 502", "http-server-error",
     OUTAGE, ("HTTP 502",)),
    ("go", "*tls.CertificateVerificationError", None,
     "tls: failed to verify certificate: x509: certificate signed by unknown authority",
     "ssl-cert-verify", CONFIG, ("certificate signed by unknown authority",)),
    ("go", "*fs.PathError", None, "open ./catalog.json: no such file or directory",
     "file-not-found", CONFIG, ("./catalog.json",)),
    # .NET
    ("csharp", "System.Net.Http.HttpRequestException", DOTNET_HTTP,
     "Connection refused (localhost:5000)", "connection-refused", OUTAGE, ("localhost:5000",)),
    ("csharp", "System.Net.Sockets.SocketException", None,
     "No connection could be made because the target machine actively refused it.",
     "connection-refused", OUTAGE, ()),
    ("csharp", "System.Net.Http.HttpRequestException", DOTNET_HTTP,
     "Response status code does not indicate success: 503 (Service Unavailable).",
     "http-server-error", OUTAGE, ("HTTP 503",)),
    ("csharp", "System.TimeoutException", None, "The operation has timed out.", "timeout",
     OUTAGE, ()),
    ("csharp", "System.Threading.Tasks.TaskCanceledException", None,
     "The request was canceled due to the configured HttpClient.Timeout of 100 seconds elapsing.",
     "read-timeout", OUTAGE, ()),
    ("csharp", "System.Net.Sockets.SocketException", None,
     "No such host is known. (orders-db.internal:443)", "dns-unknown-host", CONFIG,
     ("orders-db.internal",)),
    ("csharp", "System.IO.FileNotFoundException", None,
     "Could not find file '/app/appsettings.Production.json'.", "file-not-found", CONFIG,
     ("'/app/appsettings.Production.json'",)),
    ("csharp", "System.UnauthorizedAccessException", None,
     "Access to the path '/var/log/shop' is denied.", "permission-denied", CONFIG,
     ("'/var/log/shop'",)),
    # Ruby
    ("ruby", "Errno::ECONNREFUSED", None, "Failed to open TCP connection to localhost:3000 "
     '(Connection refused - connect(2) for "localhost" port 3000)', "connection-refused", OUTAGE,
     ("localhost:3000",)),
    ("ruby", "Net::ReadTimeout", None, "Net::ReadTimeout with #<TCPSocket:(closed)>",
     "read-timeout", OUTAGE, ()),
    ("ruby", "Net::OpenTimeout", None, "execution expired", "connect-timeout", OUTAGE, ()),
    ("ruby", "Timeout::Error", None, "execution expired", "timeout", OUTAGE, ()),
    ("ruby", "Faraday::ServerError", None, "the server responded with status 503",
     "http-server-error", OUTAGE, ("HTTP 503",)),
    ("ruby", "Faraday::UnauthorizedError", None, "the server responded with status 401",
     "http-auth", CONFIG, ("HTTP 401",)),
    ("ruby", "SocketError", None, "Failed to open TCP connection to orders-db.internal:443 "
     "(getaddrinfo: Name or service not known)", "dns-unknown-host", CONFIG,
     ("orders-db.internal",)),
    ("ruby", "Errno::ENOENT", None, "No such file or directory @ rb_sysopen - config/shop.yml",
     "file-not-found", CONFIG, ("config/shop.yml",)),
    # PHP
    ("php", "GuzzleHttp\\Exception\\ConnectException", None,
     "cURL error 7: Failed to connect to localhost port 8080 after 0 ms: Connection refused"
     + CURL_HELP + " for http://localhost:8080/orders", "connection-refused", OUTAGE,
     ("localhost:8080",)),
    ("php", "GuzzleHttp\\Exception\\ConnectException", None,
     "cURL error 28: Operation timed out after 5001 milliseconds with 0 bytes received"
     + CURL_HELP + " for http://quotes.internal/v1/quote", "read-timeout", OUTAGE,
     ("http://quotes.internal/v1/quote",)),
    ("php", "GuzzleHttp\\Exception\\ConnectException", None,
     "cURL error 28: Connection timed out after 5001 milliseconds" + CURL_HELP
     + " for http://quotes.internal/", "connect-timeout", OUTAGE, ()),
    ("php", "GuzzleHttp\\Exception\\ServerException", None,
     "Server error: `GET http://quotes.internal/v1/quote` resulted in a `503 Service "
     "Unavailable` response:\nupstream down", "http-server-error", OUTAGE,
     ("http://quotes.internal/v1/quote", "HTTP 503")),
    ("php", "GuzzleHttp\\Exception\\ClientException", None,
     "Client error: `GET http://quotes.internal/v1/quote/9` resulted in a `404 Not Found` "
     "response", "http-not-found", "bad_input", ("HTTP 404",)),
    ("php", "GuzzleHttp\\Exception\\ConnectException", None,
     "cURL error 6: Could not resolve host: quotes.internal" + CURL_HELP, "dns-unknown-host",
     CONFIG, ("quotes.internal",)),
    ("php", "GuzzleHttp\\Exception\\RequestException", None,
     "cURL error 60: SSL certificate problem: self-signed certificate" + CURL_HELP,
     "ssl-cert-verify", CONFIG, ("self-signed certificate",)),
    ("php", "PDOException", None, 'SQLSTATE[08006] [7] connection to server at "db" '
     "(172.18.0.2), port 5432 failed: Connection refused", "connection-refused", OUTAGE,
     ("db:5432",)),
    ("php", "ErrorException", None, "fopen(/srv/shop/var/prices.json): Failed to open stream: "
     "No such file or directory", "file-not-found", CONFIG, ("/srv/shop/var/prices.json",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("platform", "type_", "module", "value", "rule", "category", "words"),
    CASES,
    ids=[f"{case[0]}-{case[4]}-{n}" for n, case in enumerate(CASES)],
)
def test_another_languages_failure_gets_its_rule_and_specifics(
    platform: str,
    type_: str,
    module: str | None,
    value: str,
    rule: str,
    category: str,
    words: tuple[str, ...],
) -> None:
    finding = diagnose(event(platform, type_, value, module))
    assert (finding.rule, finding.category) == (rule, category), finding.root_cause
    for word in words:
        assert word in finding.root_cause
    assert "?" not in finding.root_cause.replace("?)", "")
    assert finding.confidence >= 0.5


# The knowledge base without what it knows of other platforms: Python's, as it was.
PYTHON_ONLY = HeuristicAnalyser(
    [dataclasses.replace(rule, other_platforms=(), other_fix=()) for rule in RULES]
)


@pytest.mark.parametrize("platform", [None, "python"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[4]}-{n}" for n, c in enumerate(CASES)])
def test_a_python_event_is_read_as_if_other_platforms_were_unknown(
    case: tuple[Any, ...], platform: str | None
) -> None:
    _, type_, module, value, *_ = case
    doc = event(platform, type_, value, module)
    assert diagnose(doc) == diagnose(doc, PYTHON_ONLY)


def test_other_platforms_words_are_not_read_in_python_events() -> None:
    node = event("node", "Error", "connect ETIMEDOUT 10.0.0.5:443")
    python = event(None, "Error", "connect ETIMEDOUT 10.0.0.5:443")
    assert diagnose(node).rule == "connect-timeout"
    assert diagnose(python).rule == "fallback"


def test_other_platforms_get_a_fix_in_their_terms() -> None:
    go = diagnose(event("go", "*fs.PathError", "open ./catalog.json: no such file or directory"))
    python = diagnose(
        event(None, "FileNotFoundError", "[Errno 2] No such file or directory: 'catalog.json'")
    )
    assert go.rule == python.rule == "file-not-found"
    assert "Path(__file__)" in python.suggested_fix
    assert "Path(__file__)" not in go.suggested_fix
    assert "./catalog.json" in go.suggested_fix


def test_a_databases_permission_error_is_not_a_files() -> None:
    finding = diagnose(event("node", "error", "permission denied for table orders"))
    assert finding.rule != "permission-denied"


@pytest.mark.parametrize(
    ("matcher", "problem"),
    [
        (Matcher(), "a matcher needs types or a message"),
        (Matcher(message=r"(?P<where>x)"), "are not the rule's"),
        (Matcher(message=r"(unclosed"), "bad regex"),
    ],
)
def test_an_invalid_matcher_is_refused_at_construction(matcher: Matcher, problem: str) -> None:
    rule = Rule("outage", OUTAGE, "high", cause=("{where} failed.",), fix=("Retry.",),
                other_platforms=(matcher,))  # fmt: skip
    with pytest.raises(ValueError, match=problem):
        HeuristicAnalyser([rule])


def test_a_qualified_type_of_one_language_is_not_a_bare_name_of_another() -> None:
    # Ruby's Timeout::Error is a timeout; Node's Error, of no module, is not.
    assert diagnose(event("ruby", "Timeout::Error", "execution expired")).rule == "timeout"
    assert diagnose(event("node", "Error", "Something broke")).rule == "fallback"
