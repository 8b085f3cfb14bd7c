"""The heuristic analyser over real failures: what it finds, how sure, and what it proposes."""

from __future__ import annotations

import decimal
import inspect
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mendline.analyzers.grouping.fingerprint import culprit, title
from mendline.analyzers.rootcause.heuristic import RULES, HeuristicAnalyser, Rule
from mendline.schemas.finding import Finding, IssueContext, IssueSummary, PastIssue

from . import heuristic_samples as samples
from .event_helpers import event_of, load
from .grouping_samples import capture, charge, read_setting

SAMPLES = samples.__name__
SAMPLES_PATH = "tests/analyzers/heuristic_samples.py"
ANALYSER = HeuristicAnalyser()


def context_of(
    *events: dict[str, Any], similar: list[PastIssue] | None = None, **issue: Any
) -> IssueContext:
    """An issue of ``events`` (newest first) as the analysers are given it."""
    summary: dict[str, Any] = {"id": 1, "service": "checkout", "level": "error", "times_seen": 1}
    summary.update(issue)
    if "title" not in summary:
        summary["title"] = title(events[0]) if events else "no events"
        summary["culprit"] = culprit(events[0]) if events else None
    return IssueContext(issue=IssueSummary(**summary), events=list(events), similar=similar or [])


def diagnose(exc: BaseException, **options: Any) -> Finding:
    """Log ``exc`` the real way and diagnose the issue it opens."""
    return ANALYSER.diagnose(context_of(event_of(exc), **options))


def wire(*exceptions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An event as another producer might send it: these exceptions, no frames unless given."""
    chain = [{"frames": []} | exception for exception in exceptions]
    return event_of(None) | {"exceptions": chain} | fields


def line_of(fn: Callable[..., object], text: str) -> int:
    """The line number of the first line of ``fn``'s source that holds ``text``."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


# -- the world the failures happen in: loopback servers and files ----------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.3)
        status = int(self.path.rpartition("/")[2]) if self.path.startswith("/status/") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or fail the TLS handshake leave on purpose


@contextmanager
def serving(context: ssl.SSLContext | None = None) -> Iterator[int]:
    """An HTTP server on a free loopback port (HTTPS with ``context``), for the block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class World:
    tmp: Path
    http: str  # the loopback HTTP server's base URL
    port: int  # a loopback port nothing listens on
    https: str | None  # a loopback HTTPS server with a self-signed certificate, if openssl is here

    def fill(self, word: str) -> str:
        return word.format(http=self.http, port=self.port, tmp=self.tmp)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("heuristic")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tls = _tls_context(tmp)
    with serving() as http_port:
        if tls is None:
            yield World(tmp, f"http://127.0.0.1:{http_port}", port, None)
            return
        with serving(tls) as https_port:
            yield World(
                tmp, f"http://127.0.0.1:{http_port}", port, f"https://127.0.0.1:{https_port}"
            )


def _tls_context(folder: Path) -> ssl.SSLContext | None:
    """A TLS 1.3-only server context with a fresh self-signed certificate; None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    key, cert = folder / "key.pem", folder / "cert.pem"
    options = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    subprocess.run(
        [openssl, *options.split(), "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
        timeout=30,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def https(world: World) -> str:
    if world.https is None:
        pytest.skip("no openssl to make a certificate with")
    return world.https


def reset_by_peer(world: World) -> BaseException:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            peer, _ = server.accept()
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()  # with a zero linger: a reset, not an orderly close
            return capture(samples.read_reply, client)


def silent_peer(fn: Callable[[socket.socket], object]) -> BaseException:
    """What ``fn`` raises reading from a loopback peer that never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            client.settimeout(0.05)
            return capture(fn, client)


def connect_timeout(world: World) -> BaseException:
    """A loopback listener whose backlog is full drops new connections: they time out."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        waiting = []
        try:
            for _ in range(8):
                sock = socket.socket()
                waiting.append(sock)
                sock.settimeout(0.2)
                try:
                    sock.connect(server.getsockname())
                except TimeoutError:
                    break
            else:
                pytest.skip("the loopback listener's backlog never filled")
            return capture(samples.fetch_quote, f"http://127.0.0.1:{server.getsockname()[1]}/")
        finally:
            for sock in waiting:
                sock.close()


def unresolvable(world: World) -> BaseException:
    """A lookup under the reserved .invalid TLD fails locally; skip if the resolver hangs."""
    found: list[BaseException] = []
    thread = threading.Thread(target=lambda: found.append(capture(samples.resolve)), daemon=True)
    thread.start()
    thread.join(2)
    if not found or not isinstance(found[0], socket.gaierror):
        pytest.skip("the resolver did not fail the .invalid lookup within 2 s")
    return found[0]


def permission_denied(world: World) -> BaseException:
    path = world.tmp / "read-only.txt"
    path.write_text("report\n")
    path.chmod(0o400)
    # root may write a read-only file; the kernel still refuses it some files
    for target in (str(path), "/proc/1/mem"):
        try:
            samples.write_report(target)
        except PermissionError as exc:
            return exc
        except OSError:
            continue
    pytest.skip("no file here refuses to be written")


def out_of_descriptors(world: World) -> BaseException:
    resource = pytest.importorskip("resource")
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd to count open files with")
    path = world.tmp / "descriptor.txt"
    path.write_text("x")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    used = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, hard))
    try:
        return capture(samples.open_many, str(path), used + 16)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def disk_full(world: World) -> BaseException:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    return capture(samples.write_report, "/dev/full")


def circular_import(world: World) -> BaseException:
    folder = world.tmp / "circular"
    folder.mkdir(exist_ok=True)
    (folder / "billing_a.py").write_text("from billing_b import total\n\nrate = 2\n")
    (folder / "billing_b.py").write_text("from billing_a import rate\n\ntotal = rate\n")
    sys.path.insert(0, str(folder))
    try:
        return capture(samples.load_plugin, "billing_a")
    finally:
        sys.path.remove(str(folder))
        for name in ("billing_a", "billing_b"):
            sys.modules.pop(name, None)


def old_tls_client(world: World) -> BaseException:
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    return capture(lambda: samples.fetch(https(world), verify=client))


def sqlite_failure(action: Callable[[Any], object]) -> BaseException:
    db = samples.shop_db()
    samples.add_user(db, "ada@example.com")
    try:
        return capture(action, db)
    finally:
        db.close()


def interrupted(world: World) -> BaseException:
    try:
        samples.stop()
    except SystemExit as exc:
        return exc
    raise AssertionError("stop() returned")


def cycle() -> dict[str, Any]:
    node: dict[str, Any] = {"name": "root"}
    node["parent"] = node
    return node


# -- the table: real failures, and what the finding must say ------------------------------------


@dataclass(frozen=True)
class Row:
    rule: str
    category: str
    make: Callable[[World], BaseException]
    words: tuple[str, ...]
    name: str = ""

    @property
    def id(self) -> str:
        return self.name or self.rule


def row(rule: str, category: str, make: Callable[[World], BaseException], *words: str) -> Row:
    return Row(rule, category, make, words)


ROWS = [
    # parsing input
    row("int-parse", "bad_input", lambda w: capture(samples.parse_quantity, {"n": "n/a"}),
        "parse_quantity", "'n/a'", "int()", 'args["n"]'),
    row("float-parse", "bad_input", lambda w: capture(samples.parse_price, "12,50"),
        "parse_price", "'12,50'", "float()"),
    row("decimal-parse", "bad_input", lambda w: capture(samples.parse_amount, "1.2.3"),
        "parse_amount", "Decimal()", "passes text"),
    row("datetime-parse", "bad_input", lambda w: capture(samples.parse_day, "31/12/2024"),
        "parse_day", "'31/12/2024'", "'%Y-%m-%d'"),
    row("isoformat-parse", "bad_input", lambda w: capture(samples.parse_timestamp, "yesterday"),
        "'yesterday'", "fromisoformat()"),
    row("json-empty", "bad_input", lambda w: capture(samples.load_body, ""),
        "load_body", "parses body as JSON", "empty"),
    row("json-decode", "bad_input", lambda w: capture(samples.load_body, "{'sku': 1}"),
        "load_body", "double quotes", "line 1, column 2"),
    row("unicode-decode", "bad_input", lambda w: capture(samples.decode_upload, b"caf\xe9"),
        "decode_upload", "as utf-8", "0xe9"),
    row("unicode-encode", "configuration", lambda w: capture(samples.to_ascii, "caf\xe9"),
        "to_ascii", "as ascii", "'\\xe9'"),
    row("value-unpack", "type_mismatch", lambda w: capture(samples.split_pair, "a:b:c"),
        "split_pair", "left, right", 'text.split(":")', "expects 2"),
    row("pydantic-validation", "bad_input",
        lambda w: capture(samples.line_item, {"sku": "a-1", "quantity": "two"}),
        "LineItem", "quantity", "valid integer"),
    # lookups
    row("key-missing", "missing_key_or_attribute",
        lambda w: capture(samples.user_id_of, {"name": "Ada"}),
        "user_id_of", "payload has no key 'user_id'"),
    Row("key-missing", "missing_key_or_attribute",
        lambda w: capture(samples.field_of, {"name": "Ada"}, "email"),
        ("field_of", "looks up payload[field]", "payload has no key 'email'"),
        "key-missing-variable"),
    row("env-var-missing", "configuration", lambda w: capture(samples.database_url),
        "database_url", "'MENDLINE_SAMPLE_ORDERS_DB_URL'", "checkout"),
    row("index-out-of-range", "missing_key_or_attribute",
        lambda w: capture(samples.first_item, []), "first_item", "items[0]"),
    row("pop-from-empty", "logic_bug", lambda w: capture(samples.next_job, []),
        "next_job", "pops from jobs"),
    row("none-attribute", "null_reference", lambda w: capture(samples.email_of, {}, 7),
        "email_of", "`user.email` where user is None"),
    row("module-attribute", "missing_key_or_attribute", lambda w: capture(samples.pretty, {}),
        "pretty", "json.dumps_pretty"),
    row("object-attribute", "missing_key_or_attribute", lambda w: capture(samples.shout, "hi"),
        "shout", "`text.uppercase`", "of type str"),
    row("value-not-in-list", "missing_key_or_attribute",
        lambda w: capture(samples.untag, ["new"], "sale"), "untag", "tags.remove()"),
    # calls and types
    row("call-missing-argument", "logic_bug", lambda w: capture(samples.new_invoice, "F-1"),
        "new_invoice", "Invoice.__init__()", "'total'"),
    row("call-unexpected-keyword", "logic_bug",
        lambda w: capture(samples.notify, "ada@example.com"), "notify", "send_receipt()", "cc"),
    row("call-too-many-arguments", "logic_bug", lambda w: capture(samples.fill, []),
        "fill", "add_item()", "3 positional"),
    row("none-not-subscriptable", "null_reference", lambda w: capture(samples.port_of, None),
        "port_of", '`config["port"]` where config is None'),
    row("none-not-iterable", "null_reference", lambda w: capture(samples.total_of, {}),
        "total_of", 'order.get("items"), which is None'),
    row("none-not-callable", "null_reference", lambda w: capture(samples.done, {}),
        "done", "None", "hook()"),
    row("none-operand", "null_reference", lambda w: capture(samples.with_shipping, 10, None),
        "with_shipping", "+", "NoneType", "subtotal + shipping"),
    row("unsupported-operand", "type_mismatch",
        lambda w: capture(samples.line_total, decimal.Decimal("9.99"), 1.5),
        "line_total", "decimal.Decimal", "float"),
    row("str-concatenation", "type_mismatch", lambda w: capture(samples.label, 7),
        "label", "types str and int"),
    row("not-subscriptable", "type_mismatch", lambda w: capture(samples.initial, 42),
        "initial", "`code[0]`", "of type int"),
    row("not-iterable", "type_mismatch", lambda w: capture(samples.digits, 42), "digits",
        "of type int"),
    row("not-callable", "type_mismatch", lambda w: capture(samples.configure, {}),
        "configure", "of type dict"),
    # the code's own assumptions
    row("zero-division", "logic_bug", lambda w: capture(samples.average, []),
        "average", "divides by len(values)"),
    row("recursion", "logic_bug", lambda w: capture(samples.depth, cycle()),
        f"{SAMPLES}.depth calls itself"),
    row("memory", "resource_exhaustion", lambda w: capture(samples.allocate), "allocate"),
    row("overflow", "bad_input", lambda w: capture(samples.compound, 0.5, 2000),
        "compound", "math range error"),
    row("assertion", "logic_bug", lambda w: capture(samples.check_quantity, 0),
        "check_quantity", "`quantity > 0`", "quantity must be positive"),
    row("not-implemented", "logic_bug", lambda w: capture(samples.export_all),
        "Exporter.export"),
    row("unbound-local", "logic_bug", lambda w: capture(samples.discount, 50),
        "discount", "reads rate"),
    row("name-error", "logic_bug", lambda w: capture(samples.tax, 10), "tax", "TAX_RATE"),
    row("dict-changed-during-iteration", "logic_bug",
        lambda w: capture(samples.prune, {"a": 0, "b": 1}), "prune", "counts", "dictionary"),
    row("stop-iteration", "logic_bug", lambda w: capture(samples.first_words, ["a b", ""]),
        "next(iter(line.split()))", "RuntimeError: generator raised StopIteration"),
    row("interrupted", "unknown", interrupted, "SystemExit"),
    # imports, files and resources
    row("module-not-found", "configuration",
        lambda w: capture(samples.load_plugin, "mendline_sample_missing_plugin"),
        "imports mendline_sample_missing_plugin", "checkout"),
    row("import-name", "configuration", lambda w: capture(samples.pretty_printer),
        "pretty_printer", "imports dumps_pretty from json"),
    row("circular-import", "logic_bug", circular_import, "billing_a", "circular import"),
    row("file-not-found", "configuration",
        lambda w: capture(samples.read_config, str(w.tmp / "missing.toml")),
        "read_config", "missing.toml", "open(path)"),
    row("is-a-directory", "configuration", lambda w: capture(samples.read_config, str(w.tmp)),
        "read_config", "{tmp}"),
    row("permission-denied", "configuration", permission_denied, "write_report"),
    row("no-space-left", "resource_exhaustion", disk_full, "write_report", "disk"),
    row("too-many-open-files", "resource_exhaustion", out_of_descriptors, "open_many"),
    # the network
    row("connection-refused", "dependency_outage_or_timeout",
        lambda w: capture(samples.connect_to, w.port), "open_stream", "127.0.0.1:{port}"),
    Row("connection-refused", "dependency_outage_or_timeout",
        lambda w: capture(samples.plain_connect, w.port), ("plain_connect", "refused"),
        "connection-refused-socket"),
    Row("connection-refused", "dependency_outage_or_timeout",
        lambda w: capture(samples.fetch, f"http://127.0.0.1:{w.port}/"),
        ("fetch", "refused"), "connection-refused-httpx"),
    row("connection-reset", "dependency_outage_or_timeout", reset_by_peer,
        "read_reply", "closed by the other side"),
    row("dns-unknown-host", "configuration", unresolvable,
        "resolve", '"orders-db.mendline-sample.invalid"'),
    row("timeout", "dependency_outage_or_timeout", lambda w: silent_peer(samples.read_reply),
        "read_reply", "recv()"),
    Row("timeout", "dependency_outage_or_timeout",
        lambda w: capture(samples.quote_with_deadline, 0.01),
        ("wait_for_quote", "slow_quote() (timeout=seconds"), "timeout-asyncio"),
    row("read-timeout", "dependency_outage_or_timeout",
        lambda w: capture(lambda: samples.fetch(w.http + "/slow", timeout=0.05)),
        "fetch", "timeout"),
    row("connect-timeout", "dependency_outage_or_timeout", connect_timeout,
        "fetch", "RuntimeError: quote service failed"),
    row("http-pool-timeout", "resource_exhaustion",
        lambda w: capture(samples.fetch_while_streaming, w.http + "/status/200"),
        "fetch_while_streaming", "pool"),
    row("http-auth", "configuration", lambda w: capture(samples.fetch, w.http + "/status/401"),
        "fetch", "{http}/status/401", "HTTP 401", "credentials"),
    row("http-not-found", "bad_input", lambda w: capture(samples.fetch, w.http + "/status/404"),
        "{http}/status/404", "HTTP 404"),
    row("http-rate-limited", "resource_exhaustion",
        lambda w: capture(samples.fetch, w.http + "/status/429"), "{http}/status/429", "429"),
    row("http-server-error", "dependency_outage_or_timeout",
        lambda w: capture(samples.fetch, w.http + "/status/503"), "{http}/status/503", "503"),
    Row("http-server-error", "dependency_outage_or_timeout",
        lambda w: capture(samples.fetch_with_requests, w.http + "/quote"),
        ("fetch_with_requests", "{http}/quote", "503"), "http-server-error-requests"),
    row("http-client-error", "bad_input",
        lambda w: capture(samples.fetch, w.http + "/status/422"), "{http}/status/422", "422"),
    row("ssl-plain-port", "configuration",
        lambda w: capture(samples.fetch, w.http.replace("http:", "https:")),
        "fetch", "TLS", "plain text"),
    row("ssl-cert-verify", "configuration", lambda w: capture(samples.fetch, https(w)),
        "fetch", "certificate verification (self"),
    row("ssl-error", "configuration", old_tls_client, "TLS handshake failed"),
    # databases
    row("db-unique-violation", "logic_bug",
        lambda w: sqlite_failure(lambda db: samples.add_user(db, "ada@example.com")),
        "add_user", "users.email"),
    Row("db-unique-violation", "logic_bug", lambda w: capture(samples.insert_order_pg, 42),
        ("insert_order_pg", "id=42", "orders_pkey"), "db-unique-violation-psycopg"),
    Row("db-unique-violation", "logic_bug",
        lambda w: capture(samples.insert_user_asyncpg, "ada@example.com"),
        ("insert_user_asyncpg", "users_email_key"), "db-unique-violation-asyncpg"),
    row("db-not-null", "null_reference", lambda w: sqlite_failure(
        lambda db: samples.add_user(db, None)), "add_user", "users.email"),
    row("db-foreign-key", "logic_bug", lambda w: sqlite_failure(
        lambda db: samples.add_order(db, 99)), "add_order", "foreign key"),
    row("db-integrity", "logic_bug", lambda w: sqlite_failure(
        lambda db: samples.add_order(db, 1, 0)), "add_order", "CHECK constraint failed"),
    row("db-locked", "concurrency",
        lambda w: capture(samples.add_user_while_locked, str(w.tmp / "shop.db")),
        "add_user", "write lock"),
    row("db-deadlock", "concurrency", lambda w: capture(samples.transfer, 1, 2), "transfer"),
    row("db-too-many-connections", "resource_exhaustion", lambda w: capture(samples.connect_pg),
        "connect_pg", "max_connections"),
    row("db-connection-lost", "dependency_outage_or_timeout",
        lambda w: capture(samples.query_pg), "query_pg"),
    row("db-pool-exhausted", "resource_exhaustion", lambda w: capture(samples.checkout_session),
        "checkout_session", "5 plus 10 overflow"),
    # asyncio
    row("event-loop-closed", "concurrency", lambda w: capture(samples.reuse_closed_loop),
        "reuse_closed_loop", "closed"),
    row("event-loop-mismatch", "concurrency", lambda w: capture(samples.await_foreign_future),
        "wait_on", "another event loop"),
]  # fmt: skip


@pytest.mark.parametrize("case", ROWS, ids=[case.id for case in ROWS])
def test_a_real_failure_gets_its_rule_category_and_specifics(case: Row, world: World) -> None:
    finding = diagnose(case.make(world))
    assert (finding.rule, finding.category) == (case.rule, case.category), finding.root_cause
    for word in case.words:
        assert world.fill(word) in finding.root_cause
    assert finding.analyser == "heuristic"
    assert finding.confidence >= 0.5
    assert finding.evidence


def test_every_rule_of_the_knowledge_base_has_a_real_failure_in_the_table() -> None:
    assert {rule.id for rule in RULES} - {case.rule for case in ROWS} == set(WIRE_ONLY)


# Failures that cannot happen here, as a producer (maybe in another language) would send them.
WIRE_ONLY = {
    "dns-temporary": (
        {"type": "gaierror", "module": "socket",
         "value": "[Errno -3] Temporary failure in name resolution"},
        "dependency_outage_or_timeout",
        "resolver",
    ),
    "import-error": (
        {"type": "ImportError", "value": "libpq.so.5: cannot open shared object file"},
        "configuration",
        "libpq.so.5",
    ),
    "generator-stop": (
        {"type": "RuntimeError", "value": "generator raised StopIteration"},
        "logic_bug",
        "PEP 479",
    ),
}  # fmt: skip


@pytest.mark.parametrize("rule", sorted(WIRE_ONLY))
def test_failures_from_other_producers_are_recognised(rule: str) -> None:
    exception, category, word = WIRE_ONLY[rule]
    finding = ANALYSER.diagnose(context_of(wire(exception)))
    assert (finding.rule, finding.category) == (rule, category)
    assert word in finding.root_cause


# -- what the finding rests on --------------------------------------------------------------


def test_the_evidence_cites_the_frame_its_line_and_the_message() -> None:
    finding = diagnose(capture(samples.parse_quantity, {"n": "n/a"}))
    lineno = line_of(samples.parse_quantity, "return int(")
    crash, caller, message = finding.evidence
    assert crash.location == f"{SAMPLES}.parse_quantity (heuristic_samples.py:{lineno})"
    assert crash.line == 'return int(args["n"])'
    assert caller.location.startswith("tests.analyzers.grouping_samples.capture (")
    assert message.location == "message"
    assert message.line == "ValueError: invalid literal for int() with base 10: 'n/a'"


def test_confidence_is_high_with_the_line_medium_with_the_type_only() -> None:
    exc = capture(samples.parse_quantity, {"n": "n/a"})
    with_line = diagnose(exc)
    event = event_of(exc)
    for frame in event["exceptions"][-1]["frames"]:
        frame.pop("context_line", None)
    without_line = ANALYSER.diagnose(context_of(event))
    assert 0.7 <= without_line.confidence < with_line.confidence <= 0.9
    assert "'n/a'" in without_line.root_cause
    type_only = ANALYSER.diagnose(context_of(wire({"type": "MemoryError", "value": ""})))
    assert 0.3 < type_only.confidence < 0.7
    unknown = ANALYSER.diagnose(context_of(wire({"type": "ValueError", "value": "odd"})))
    assert unknown.rule == "fallback"
    assert unknown.confidence <= 0.3


# -- which exception of a chain ---------------------------------------------------------------


def test_a_wrapper_is_diagnosed_by_its_cause() -> None:
    finding = diagnose(capture(read_setting, {}, "port"))
    assert finding.rule == "key-missing"
    assert "'port'" in finding.root_cause
    assert "ConfigError: setting 'port' is missing or not a number" in finding.root_cause


def test_an_outage_met_while_handling_another_error_is_the_cause(world: World) -> None:
    finding = diagnose(capture(samples.lookup_then_fetch, {}, world.port))
    assert finding.rule == "connection-refused"
    assert finding.category == "dependency_outage_or_timeout"


def test_a_bug_in_the_handler_of_a_timeout_is_diagnosed_as_the_timeout() -> None:
    finding = diagnose(silent_peer(samples.parse_after_timeout))
    assert finding.rule == "timeout"
    assert "AttributeError: 'NoneType' object has no attribute 'decode'" in finding.root_cause
    notes = [evidence.note for evidence in finding.evidence]
    assert "raised after TimeoutError in the same chain: what was logged" in notes


def test_a_log_message_without_an_exception_is_read_too() -> None:
    event = event_of(None, message="deadlock detected while saving order 7")
    finding = ANALYSER.diagnose(context_of(event))
    assert (finding.rule, finding.category) == ("db-deadlock", "concurrency")


def test_an_issue_without_events_is_read_from_its_title() -> None:
    finding = ANALYSER.diagnose(context_of(title="KeyError: 'user_id'", culprit="orders.load"))
    assert finding.rule == "key-missing"
    assert finding.root_cause.startswith("orders.load looks up the key 'user_id'")


# -- the fallback ---------------------------------------------------------------------------


def test_an_unknown_error_falls_back_with_low_confidence_and_says_where() -> None:
    finding = diagnose(capture(charge, 7, 9.5))
    assert (finding.rule, finding.category) == ("fallback", "unknown")
    assert finding.confidence <= 0.3
    assert "charge raised PaymentDeclined: card declined for order 7" in finding.root_cause
    assert finding.fix_patch is None


def test_the_fallback_guesses_a_category_from_the_type_name() -> None:
    finding = diagnose(capture(samples.reserve, "sku-1"))
    assert (finding.rule, finding.category) == ("fallback", "dependency_outage_or_timeout")
    assert finding.confidence <= 0.3


# -- severity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "medium"),
        ({"level": "critical"}, "high"),
        ({"times_seen": 5000}, "high"),
        ({"regressions": 1}, "high"),
        ({"trigger": "regression"}, "high"),
        ({"times_seen": 5000, "regressions": 2}, "high"),
    ],
)
def test_severity_is_the_rules_raised_by_level_frequency_and_regression(
    options: dict[str, Any], expected: str
) -> None:
    exc = capture(samples.parse_quantity, {"n": "n/a"})
    trigger = options.pop("trigger", "new_issue")
    context = context_of(event_of(exc), **options).model_copy(update={"trigger": trigger})
    assert ANALYSER.diagnose(context).severity == expected


def test_a_frequent_outage_is_critical_and_a_critical_stop_is_high(world: World) -> None:
    outage = capture(samples.plain_connect, world.port)
    assert diagnose(outage).severity == "high"
    assert diagnose(outage, times_seen=1000).severity == "critical"
    assert diagnose(interrupted(world)).severity == "low"
    assert diagnose(interrupted(world), level="critical").severity == "high"


# -- patches ------------------------------------------------------------------------------------


def apply(patch: str, root: Path) -> None:
    """Apply ``patch`` to the tree at ``root`` as a person would: patch -p1, else git apply."""
    if shutil.which("patch"):
        command = ["patch", "-p1", "--forward", "--batch"]
    elif shutil.which("git"):
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        command = ["git", "apply", "--unidiff-zero", "-"]
    else:
        pytest.skip("neither patch nor git is here")
    subprocess.run(command, input=patch, text=True, cwd=root, check=True, capture_output=True)


@pytest.mark.parametrize(
    ("failing", "fixed"),
    [
        (
            lambda: capture(samples.user_id_of, {"name": "Ada"}),
            lambda module: module.user_id_of({"name": "Ada"}) is None,
        ),
        (
            lambda: capture(samples.discount_of, {"total": 3}),
            lambda module: module.discount_of({"total": 3}) is None,
        ),
        (
            lambda: capture(samples.prune, {"a": 0, "b": 1}),
            lambda module: module.prune(counts := {"a": 0, "b": 1}) or counts == {"b": 1},
        ),
        (
            lambda: capture(samples.first_words, ["a b", ""]),
            lambda module: module.first_words(["a b", ""]) == ["a", None],
        ),
    ],
    ids=["get-instead-of-subscript", "nested-in-a-block", "iterate-over-copy", "next-default"],
)
def test_the_patch_applies_to_the_source_and_removes_the_failure(
    tmp_path: Path,
    failing: Callable[[], BaseException],
    fixed: Callable[[Any], bool],
) -> None:
    finding = diagnose(failing())
    assert finding.fix_patch is not None
    assert finding.fix_patch.startswith(f"--- a/{SAMPLES_PATH}\n+++ b/{SAMPLES_PATH}\n@@ -")
    copy = tmp_path / SAMPLES_PATH
    copy.parent.mkdir(parents=True)
    copy.write_text(Path(samples.__file__).read_text())
    apply(finding.fix_patch, tmp_path)
    assert fixed(load(copy, "patched_heuristic_samples", copy.read_text()))


def test_the_key_error_patch_is_the_get_of_the_line() -> None:
    finding = diagnose(capture(samples.user_id_of, {"name": "Ada"}))
    lineno = line_of(samples.user_id_of, "return payload")
    assert finding.fix_kind == "guard"
    assert finding.fix_patch == (
        f"--- a/{SAMPLES_PATH}\n+++ b/{SAMPLES_PATH}\n@@ -{lineno},1 +{lineno},1 @@\n"
        '-    return payload["user_id"]\n+    return payload.get("user_id")\n'
    )


@pytest.mark.parametrize(
    "failing",
    [
        lambda: capture(samples.owner_id_of, {"name": "Ada"}),  # .get() would fail one step on
        lambda: capture(samples.forget, {}, "s-1"),  # a del, not a read
        lambda: capture(samples.parse_quantity, {"n": "n/a"}),  # no mechanical fix for int()
    ],
    ids=["subscripted-further", "deleted", "no-patch-rule"],
)
def test_no_patch_where_a_mechanical_fix_is_not_sound(failing: Callable[[], BaseException]) -> None:
    assert diagnose(failing()).fix_patch is None


def test_the_patch_path_is_relative_to_the_top_level_package() -> None:
    frame = {
        "filename": "/srv/releases/42/app/orders.py",
        "module": "app.orders",
        "function": "Order.owner",
        "lineno": 17,
        "context_line": 'return self.data["owner"]',
        "in_app": True,
    }
    finding = ANALYSER.diagnose(context_of(wire({"type": "KeyError", "value": "'owner'",
                                                 "frames": [frame]})))  # fmt: skip
    assert finding.fix_patch == (
        "--- a/app/orders.py\n+++ b/app/orders.py\n@@ -17,1 +17,1 @@\n"
        '-        return self.data["owner"]\n+        return self.data.get("owner")\n'
    )
    library = wire({"type": "KeyError", "value": "'owner'", "frames": [frame | {"in_app": False}]})
    assert ANALYSER.diagnose(context_of(library)).fix_patch is None


# -- the learning loop ------------------------------------------------------------------------


def past(id: int, title: str, **fields: Any) -> PastIssue:
    return PastIssue(id=id, title=title, **fields)


def test_a_similar_issue_resolved_with_a_note_is_mentioned() -> None:
    similar = [past(12, "ValueError: invalid literal for int() with base 10: 'x'",
                    resolution_note="validate quantities in the form schema")]  # fmt: skip
    finding = diagnose(capture(samples.parse_quantity, {"n": "n/a"}), similar=similar)
    assert (
        "A similar issue #12 was resolved with: validate quantities in the form schema"
        in finding.suggested_fix
    )


def test_a_similar_finding_marked_right_is_mentioned() -> None:
    similar = [past(8, "KeyError: 'id'", verdict="right", suggested_fix="use payload.get('id')")]
    finding = diagnose(capture(samples.user_id_of, {}), similar=similar)
    assert "similar issue #8 was confirmed right; it said: use payload.get('id')" in (
        finding.suggested_fix
    )


def test_a_finding_of_the_same_rule_marked_wrong_lowers_the_confidence() -> None:
    exc = capture(samples.parse_quantity, {"n": "n/a"})
    plain = diagnose(exc)
    wrong = [past(7, "ValueError: invalid literal for int() with base 10: 'abc'",
                  verdict="wrong", verdict_note="the value came from a bad migration")]  # fmt: skip
    doubted = diagnose(exc, similar=wrong)
    assert doubted.confidence == pytest.approx(plain.confidence - 0.25)
    assert "similar issue #7 was marked wrong (the value came from a bad migration)" in (
        doubted.suggested_fix
    )
    assert doubted.evidence[-1].location == "issue #7"


def test_a_wrong_finding_of_another_rule_changes_nothing() -> None:
    exc = capture(samples.parse_quantity, {"n": "n/a"})
    other = [past(7, "KeyError: 'n'", verdict="wrong", verdict_note="not a key problem")]
    assert diagnose(exc, similar=other) == diagnose(exc)


# -- never raises, decides at construction ------------------------------------------------------


ODD_EVENTS: list[dict[str, Any]] = [
    {},
    {"message": ""},
    {"exceptions": None, "message": None},
    {"exceptions": "KeyError"},
    {"exceptions": [None, 3, "x", []]},
    {"exceptions": [{}]},
    {"exceptions": [{"type": 5, "value": None, "frames": "none"}]},
    {"exceptions": [{"type": "KeyError", "value": "'k'", "frames": [None, {}, {"lineno": "7"}]}]},
    {"exceptions": [{"type": "KeyError", "value": "'k'", "frames": [{"in_app": True, "lineno": True,
        "context_line": "x['k'", "function": None, "filename": 7}]}]},
    {"exceptions": [{"type": "AttributeError", "value": "'NoneType' object has no attribute 'x'",
        "frames": [{"filename": "a.py", "function": "f", "in_app": False}]}]},
    {"exceptions": [{"type": "ValueError", "value": "\ud800 invalid literal for int() with base"
        " 10: '\ud800'", "frames": [{"filename": "a.py", "function": "f", "lineno": 3,
        "context_line": "int(\ud800)", "in_app": True}]}]},
    {"exceptions": [{"type": "KeyError", "value": "'" + "k" * 9000 + "'", "frames": [
        {"filename": "a.py", "function": "f", "lineno": 1, "in_app": True,
         "context_line": "d[" * 500 + "'k'" + "]" * 500}]}]},
    {"exceptions": [{"type": "Ünïcode.Error", "value": "é" * 50, "frames": []}] * 40},
    {"message": "connection refused " * 500, "level": 7},
]  # fmt: skip


@pytest.mark.parametrize("event", ODD_EVENTS)
def test_odd_events_get_a_finding_and_never_an_exception(event: dict[str, Any]) -> None:
    finding = ANALYSER.diagnose(context_of(event, title="odd"))
    assert Finding.model_validate(finding.model_dump()) == finding


def test_random_shapes_never_raise() -> None:
    generator = random.Random(20240521)
    leaves: list[Any] = [None, 0, -1, 7, 2.5, True, "", "x", "'k'", "KeyError", [], {}, "\x00"]
    keys = ["type", "module", "value", "frames", "filename", "function", "lineno",
            "context_line", "in_app", "exceptions", "message", "level"]  # fmt: skip

    def shape(depth: int) -> Any:
        if depth > 3 or generator.random() < 0.3:
            return generator.choice(leaves)
        if generator.random() < 0.5:
            return [shape(depth + 1) for _ in range(generator.randint(0, 3))]
        return {generator.choice(keys): shape(depth + 1) for _ in range(generator.randint(0, 5))}

    for _ in range(300):
        event = shape(0)
        event = event if isinstance(event, dict) else {"exceptions": event}
        Finding.model_validate(ANALYSER.diagnose(context_of(event, title="odd")).model_dump())


def test_a_long_hostile_message_is_diagnosed_and_quoted_cut_short() -> None:
    # Brackets the subscript patterns could backtrack over, at the size an event may hold.
    # What bounds the analyser's time is that it cuts a value to 2000 characters and a line
    # to 400 before any pattern runs: the key in the finding shows the cut.
    value = "'" + "a[" * 4000 + "'"
    frame = {"filename": "a.py", "function": "f", "lineno": 1, "in_app": True,
             "context_line": "a[" * 500}  # fmt: skip
    event = wire({"type": "KeyError", "value": value, "frames": [frame]})
    finding = ANALYSER.diagnose(context_of(event))
    assert (finding.rule, finding.category) == ("key-missing", "missing_key_or_attribute")
    key = value[:197] + "..."  # a value stands in a sentence with at most 200 characters
    assert finding.root_cause == f"f looks up the key {key}, which is not there."
    assert finding.suggested_fix is not None and key in finding.suggested_fix


async def test_analyse_is_diagnose_behind_the_analyser_interface() -> None:
    context = context_of(event_of(capture(samples.parse_quantity, {"n": "n/a"})))
    assert await ANALYSER.analyse(context) == ANALYSER.diagnose(context)


def test_a_knowledge_base_can_be_extended() -> None:
    declined = Rule(
        "payment-declined", "bad_input", "low", types=("PaymentDeclined",),
        message=r"card declined for order (?P<order>\d+)",
        cause=("{where} had the card for order {order} declined.", "{where} had a card declined."),
        fix=("Ask the customer for another card.",),
    )  # fmt: skip
    analyser = HeuristicAnalyser((*RULES, declined))
    finding = analyser.diagnose(context_of(event_of(capture(charge, 7, 9.5))))
    assert (finding.rule, finding.severity) == ("payment-declined", "low")
    assert "order 7 declined" in finding.root_cause


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (Rule("x", "bad_input", "low", cause=("{nowhere}",), fix=("f",)), "unknown template"),
        (Rule("x", "bad_input", "low", cause=("{line}",), fix=("f",)), "the last cause"),
        (Rule("x", "bad_input", "low", message="(", cause=("c",), fix=("f",)), "bad regex"),
        (Rule("x", "bad_input", "low", lines=("(?&key)",), cause=("c",), fix=("f",)),
         "refers to a field"),
        (Rule("x", "bad_input", "low", patch="rewrite", cause=("c",), fix=("f",)), "patch"),
        (Rule("x", "nonsense", "low", cause=("c",), fix=("f",)), "category"),  # type: ignore[arg-type]
        (Rule("fallback", "bad_input", "low", cause=("c",), fix=("f",)), "unique"),
    ],
)  # fmt: skip
def test_an_invalid_rule_is_refused_at_construction(rule: Rule, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        HeuristicAnalyser([rule])


def test_a_fallback_without_a_frame_a_culprit_or_a_logger_names_no_place() -> None:
    event = wire({"type": "QuuxFailure", "value": "it went wrong"})
    event.pop("logger", None)
    found = ANALYSER.diagnose(context_of(event, title="QuuxFailure: it went wrong", culprit=None))
    assert "at the code" not in found.suggested_fix
    assert found.suggested_fix.startswith("Read the code that raised or logged it")
