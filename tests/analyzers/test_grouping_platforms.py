"""Grouping of other languages' events, as Sentry's default grouping reads their frames: which
events share an issue, which do not, and what an issue is called."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mendline.analyzers.grouping import default_in_app
from mendline.analyzers.grouping.fingerprint import culprit, fingerprint, title

from . import platform_events as sdk
from .platform_events import browser, changed, dotnet, go, java, node, php, ruby

Event = dict[str, Any]

# -- what each platform groups by --------------------------------------------------------------

GROUPED_BY: dict[str, tuple[Callable[[], Event], tuple[str, ...]]] = {
    # Browser JavaScript: a module made from the script's URL without its build hash, the last
    # part of the function's name, anonymous functions left out.
    "javascript": (browser, (
        "type TypeError",
        "frame main:",
        "frame main:onClick",
        "frame main:",
        "frame main:renderTotal",
    )),
    # Node: the SDK's module, the function's last part, the source line; node_modules and the
    # event loop left out.
    "node": (node, (
        "type TypeError",
        "frame routes:orders: | router.post('/orders', async (req, res) => {",
        "frame lib:totals:orderTotal | const total = order.items.reduce(sum, 0);",
    )),
    # Java: class and method, never the source line; proxies' hashes replaced, lambdas' names
    # and classes left out, the SDK's own frames too.
    "java": (java, (
        "type com.acme.shop.ApiException",
        "frame com.acme.shop.ApiController$$EnhancerBySpringCGLIB$$<auto>:handle",
        "frame com.acme.shop.ApiController:",
        "frame :apply",
        "frame com.acme.shop.ApiRequest:perform",
    )),
    # Go: import path and function, never the source line.
    "go": (go, (
        "type *fs.PathError",
        "frame github.com/acme/shop/internal/api:(*Server).createOrder",
        "frame main:main",
    )),
    # .NET: namespace.class and method without its parameters, never the source line.
    "csharp": (dotnet, (
        "type System.InvalidOperationException",
        "frame Shop.Controllers.OrdersController:Post",
        "frame Shop.Services.OrderService:ProcessOrder",
    )),
    # Ruby (no module sent): the file's lowercased name, the block or template function without
    # its generated parts, the source line.
    "ruby": (ruby, (
        "type NoMethodError",
        "frame orders_controller.rb:block | render :show",
        "frame show.html.erb:_app_views_orders_show_html_erb | <%= @order.customer.name %>",
    )),
    # PHP (no module sent): the file's lowercased name, the function (an anonymous class's
    # method by its name alone), the source line.
    "php": (php, (
        "type TypeError",
        "frame kernel.php:handle | return $this->orders->total($request->get('id'));",
        "frame ordercontroller.php:App\\Controller\\OrderController::total"
        " | return array_sum($order->lines);",
    )),
}  # fmt: skip


@pytest.mark.parametrize("platform", sorted(GROUPED_BY))
def test_each_platform_groups_by_its_frames_parts(platform: str) -> None:
    make, components = GROUPED_BY[platform]
    event = make()
    assert event["platform"] == platform
    grouping = fingerprint(event)
    assert grouping.basis == "stacktrace"
    assert grouping.components == components
    assert grouping.version == 1


# -- the same bug: one issue -------------------------------------------------------------------

# Safari adds frames of the engine's own code that Chrome leaves out.
SAFARI = browser()
SAFARI["exceptions"][0]["frames"].insert(
    2, {"filename": "[native code]", "function": "forEach", "in_app": True}
)

SAME: list[tuple[str, Event, Event]] = [
    ("browser-new-build-hash", browser("4f3a2b1c"), browser("9d8e7f60")),
    ("browser-moved-columns", browser(column=13456), browser(column=20011)),
    ("browser-cross-browser-names", browser(),
     changed(browser(), 3, function="renderTotal")),
    ("browser-safari-native-frame", browser(), SAFARI),
    ("node-moved-line", node(lineno=14), node(lineno=52)),
    ("node-reindented-line", node(), node(line="\tconst total =  order.items.reduce(sum, 0);")),
    ("java-changed-line-and-source", java(),
     java(lineno=19, line="throw new ApiException(\"expired: \" + token);")),
    ("java-new-proxies-and-lambdas", java(),
     java(proxy="$$EnhancerBySpringCGLIB$$9a8b7c6d_2", lambda_="lambda$handle$3",
          lambda_class="$$Lambda$877/0x00000008012abcd0", accessor="GeneratedMethodAccessor112")),
    ("java-guice-proxy", java(proxy="$$EnhancerByGuice$$ae46b1bf"),
     java(proxy="$$EnhancerByGuice$$caceacd2")),
    ("java-hibernate-proxy", java(proxy="$HibernateProxy$oRWxjAWT"),
     java(proxy="$HibernateProxy$Zx81kqPq")),
    ("java-javassist-proxy", java(proxy="_$$_javassist_74"), java(proxy="_$$_javassist_seam_12")),
    ("go-changed-line-and-source", go(lineno=88),
     go(lineno=120, line="\t\treturn fmt.Errorf(\"read catalog: %w\", err)")),
    ("dotnet-parameters-and-line", dotnet("ProcessOrder (Guid id)"),
     dotnet("ProcessOrder (Int32 id)", lineno=61)),
    ("ruby-blocks-and-templates", ruby("block in create", "1234567_89012345"),
     ruby("block (2 levels) in create", "7654321_11112222", lineno=14)),
    ("php-anonymous-class", php("class@anonymous/srv/shop/src/Kernel.php:31$0::handle"),
     php("class@anonymous/srv/shop/src/Kernel.php:29$1::handle")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "first", "second"), SAME, ids=[case for case, *_ in SAME])
def test_the_same_bug_is_one_issue(case: str, first: Event, second: Event) -> None:
    assert first != second
    assert fingerprint(second) == fingerprint(first)


# -- different bugs: different issues ----------------------------------------------------------

DIFFERENT: list[tuple[str, Event, Event]] = [
    ("browser-other-handler", browser(click="onClick"), browser(click="onSubmit")),
    ("node-changed-raising-line", node(),
     node(line="  const total = order.lines.reduce(sum, 0);")),
    ("java-other-method", java(method="perform"), java(method="refresh")),
    ("go-other-function", go("(*Server).createOrder"), go("(*Server).cancelOrder")),
    ("dotnet-other-method", dotnet("ProcessOrder"), dotnet("CancelOrder")),
    ("ruby-changed-line", ruby(),
     changed(ruby(), 2, context_line="  <%= @order.customer.email %>\n")),
    ("php-other-method", php(), php("class@anonymous/srv/shop/src/Kernel.php:31$0::terminate")),
    ("java-other-class", java(), changed(java(), 7, module="com.acme.shop.TokenRequest")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "first", "second"), DIFFERENT, ids=[case for case, *_ in DIFFERENT]
)
def test_different_bugs_are_different_issues(case: str, first: Event, second: Event) -> None:
    assert fingerprint(second).hash != fingerprint(first).hash


# -- library frames and noise ------------------------------------------------------------------

# (maker, index of a library frame, what to change in it)
LIBRARY: list[tuple[str, Callable[[], Event], int, dict[str, Any]]] = [
    ("node", node, 1, {"function": "Route.dispatch", "module": "express.lib.router:route"}),
    ("java", java, 0, {"module": "java.util.concurrent.ThreadPoolExecutor$Worker"}),
    ("go", go, 0, {"function": "serverHandler.ServeHTTP", "module": "net/http"}),
    ("csharp", dotnet, 0, {"function": "InvokeAsync", "context_line": None}),
    ("ruby", ruby, 0, {"function": "block in exec", "context_line": "  run\n"}),
    ("php", php, 0, {"function": "Symfony\\Component\\HttpKernel\\HttpKernel::handle"}),
]


@pytest.mark.parametrize(
    ("platform", "make", "index", "change"), LIBRARY, ids=[r[0] for r in LIBRARY]
)
def test_library_frames_do_not_count_when_the_app_has_frames(
    platform: str, make: Callable[[], Event], index: int, change: dict[str, Any]
) -> None:
    event = make()
    assert event["exceptions"][0]["frames"][index]["in_app"] is False
    assert fingerprint(changed(event, index, **change)) == fingerprint(event)


def test_only_library_frames_group_by_them_without_the_event_loop() -> None:
    event = node()
    for frame in event["exceptions"][0]["frames"]:
        frame["in_app"] = False
    components = fingerprint(event).components
    assert components[1] == (
        "frame express.lib.router:layer:handle [as handle_request] | fn(req, res, next);"
    )
    assert not any("processTicksAndRejections" in part for part in components)


def test_the_java_sdks_own_frames_never_count() -> None:
    event = java()
    assert any(f["module"].startswith("io.sentry.") for f in event["exceptions"][0]["frames"])
    assert not any("io.sentry" in part for part in fingerprint(event).components)


# -- browser JavaScript's special cases --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "module"),
    [
        ("https://shop.example.com/static/js/main.4f3a2b1c.js", "main"),
        ("http://google.com/js/v1.0/foo/bar/baz.js", "foo/bar/baz"),
        ("https://cdn.example.com/v2.4.1/build/app.min.js?v=3", "app"),
        ("https://x.example/_next/static/chunks/pages/checkout-9a8b7c6d5e4f3a2b.js",
         "chunks/pages/checkout"),
        ("https://x.example/0123456789abcdef0123456789abcdef/app/main.js", "app/main"),
        ("webpack:///./src/components/Button.jsx", "src/components/Button"),
        ("app:///main.jsbundle", "main"),
        ("https://x.example/", "<unknown module>"),
    ],
)  # fmt: skip
def test_a_scripts_url_makes_a_module_without_its_build(url: str, module: str) -> None:
    event = sdk.event(
        "javascript", "Error", "x", [{"filename": url, "function": "f", "in_app": True}]
    )
    assert fingerprint(event).components[-1] == f"frame {module}:f"


@pytest.mark.parametrize("function", ["", "?"])  # "?": what the relay's conversion sends
def test_a_lone_anonymous_frame_at_a_url_is_no_stack_trace(function: str) -> None:
    frame = sdk.js_frame(function, colno=1)
    event = sdk.event("javascript", "SyntaxError", "Unexpected token '<' at 3", [frame])
    grouping = fingerprint(event)
    assert grouping.basis == "message"
    assert grouping.components[-1] == "value Unexpected token <str> at <int>"


def test_source_lines_count_unless_minified_or_anonymous_at_a_url() -> None:
    short = changed(browser(), 1, context_line="onClick: () => this.total(order),")
    assert (
        fingerprint(short).components[2] == "frame main:onClick | onClick: () => this.total(order),"
    )
    minified = changed(browser(), 1, context_line="var a=" + "x(1)," * 40)
    assert fingerprint(minified) == fingerprint(browser())
    for none in ("", "?"):
        anonymous = changed(browser(), 1, function=none, context_line="total(order)")
        assert fingerprint(anonymous) == fingerprint(changed(browser(), 1, function=none))
        assert not any("total(order)" in part for part in fingerprint(anonymous).components)


def test_eval_frames_do_not_count() -> None:
    event = browser()
    event["exceptions"][0]["frames"].insert(1, sdk.js_frame("eval", colno=3))
    assert fingerprint(event) == fingerprint(browser())


def test_an_exception_group_of_a_browser_groups_by_what_it_holds() -> None:
    def aggregate(build: str) -> Event:
        held = browser(build)["exceptions"][0] | {
            "exception_id": 1,
            "parent_id": 0,
            "source": "exceptions[0]",
        }
        raised = {"type": "AggregateError", "value": "All promises were rejected",
                  "frames": [sdk.js_frame("checkout", build=build)], "exception_id": 0,
                  "is_exception_group": True}  # fmt: skip
        return sdk.event("javascript", "x", "x", []) | {"exceptions": [held, raised]}

    assert fingerprint(aggregate("9d8e7f60")) == fingerprint(aggregate("4f3a2b1c"))
    assert title(aggregate("4f3a2b1c")) == (
        "TypeError: Cannot read properties of undefined (reading 'price') (in AggregateError)"
    )


def test_a_platform_without_rules_of_its_own_groups_by_module_and_function() -> None:
    frame = {"filename": "lib/shop/orders.ex", "module": "Shop.Orders", "function": "place/2",
             "lineno": 12, "in_app": True, "context_line": "raise ArgumentError"}  # fmt: skip
    for platform in ("elixir", "dart"):
        event = sdk.event(platform, "ArgumentError", "bad order", [frame])
        assert fingerprint(event).components[-1] == "frame Shop.Orders:place/2"


# -- titles and culprits -----------------------------------------------------------------------

CULPRITS: dict[str, tuple[Callable[[], Event], str, str]] = {
    "javascript": (browser, "main.Object.renderTotal",
                   "TypeError: Cannot read properties of undefined (reading 'price')"),
    "node": (node, "lib:totals.orderTotal",
             "TypeError: Cannot read properties of undefined (reading 'reduce')"),
    "java": (java, "com.acme.shop.ApiRequest.perform",
             "ApiException: Authentication failed, token expired!"),
    "go": (go, "main.main", "*fs.PathError: open ./catalog.json: no such file or directory"),
    "csharp": (lambda: dotnet("ProcessOrder (Guid id)"),
               "Shop.Services.OrderService.ProcessOrder",
               "System.InvalidOperationException: Order 42 has no lines"),
    "ruby": (ruby, "app/views/orders/show.html.erb in _app_views_orders_show_html_erb__1234567_"
             "89012345", "NoMethodError: undefined method `name' for nil:NilClass"),
    "php": (php, "src/Controller/OrderController.php in App\\Controller\\OrderController::total",
            "TypeError: array_sum(): Argument #1 ($array) must be of type array"),
}  # fmt: skip


@pytest.mark.parametrize("platform", sorted(CULPRITS))
def test_the_culprit_names_the_innermost_app_frame_in_the_languages_terms(platform: str) -> None:
    make, where, headline = CULPRITS[platform]
    event = make()
    assert (culprit(event), title(event)) == (where, headline)


# -- in-app when the SDK did not say -----------------------------------------------------------

IN_APP: list[tuple[str | None, dict[str, Any], bool]] = [
    ("node", {"filename": "/srv/api/node_modules/express/lib/router/layer.js"}, False),
    ("node", {"filename": "/srv/api/lib/totals.js", "module": "lib:totals"}, True),
    ("javascript", {"filename": "https://unpkg.com/react@18/umd/react.production.min.js"}, False),
    ("javascript", {"filename": "https://cdn.jsdelivr.net/npm/vue@3/dist/vue.global.js"}, False),
    ("javascript", {"filename": "https://shop.example.com/static/js/main.4f3a2b1c.js"}, True),
    ("javascript", {"abs_path": "webpack:///./src/App.jsx", "filename": "./src/App.jsx"}, True),
    ("javascript", {"abs_path": "webpack:///~/lodash/lodash.js",
                    "filename": "~/lodash/lodash.js"}, False),
    ("javascript", {"abs_path": "webpack:///./node_modules/react/index.js",
                    "filename": "./node_modules/react/index.js"}, False),
    ("javascript", {"abs_path": "app:///main.jsbundle", "filename": "app:///main.jsbundle"}, True),
    ("php", {"filename": "vendor/symfony/http-kernel/HttpKernel.php",
             "abs_path": "/srv/shop/vendor/symfony/http-kernel/HttpKernel.php"}, False),
    ("php", {"filename": "src/Kernel.php", "abs_path": "/srv/shop/src/Kernel.php"}, True),
    ("ruby", {"filename": "vendor/bundle/gems/rack-3.0.8/lib/rack/builder.rb"}, False),
    ("go", {"filename": "server.go", "module": "github.com/go-chi/chi/v5",
            "abs_path": "/root/go/pkg/mod/github.com/go-chi/chi/v5@v5.0.10/mux.go"}, False),
    ("go", {"filename": "handlers.go", "module": "github.com/acme/shop/internal/api"}, True),
    ("java", {"filename": "Thread.java", "module": "java.lang.Thread"}, False),
    ("java", {"filename": "DispatcherServlet.java",
              "module": "org.springframework.web.servlet.DispatcherServlet"}, False),
    ("java", {"filename": "Continuation.kt", "module": "kotlinx.coroutines.DispatchedTask"}, False),
    ("java", {"filename": "ApiRequest.java", "module": "com.acme.shop.ApiRequest"}, True),
    ("csharp", {"filename": "", "module": "System.Net.Http.HttpClient"}, False),
    ("csharp", {"filename": "", "module": "Microsoft.AspNetCore.Routing.EndpointMiddleware"},
     False),
    ("csharp", {"filename": "OrderService.cs", "module": "Shop.Services.OrderService"}, True),
    ("python", {"filename": "/usr/lib/python3/dist-packages/requests/api.py"}, False),
    (None, {"filename": "app/orders.py", "module": "app.orders"}, True),
]  # fmt: skip


@pytest.mark.parametrize(("platform", "frame", "in_app"), IN_APP)
def test_frames_the_sdk_did_not_mark_are_the_apps_unless_a_rule_says_library(
    platform: str | None, frame: dict[str, Any], in_app: bool
) -> None:
    assert default_in_app(platform, frame) is in_app
