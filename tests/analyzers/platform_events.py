"""Events from other languages' Sentry SDKs, as converted to ErrorEvent v1, for the grouping
tests: frames shaped as each SDK sends them (Sentry's sample events, the SDKs' own fixtures and
what @sentry/node and @sentry/browser were seen to send), oldest call first."""

from __future__ import annotations

import copy
from typing import Any

SHOP = "https://shop.example.com/static/js/main.{build}.js"


def js_frame(function: str, *, build: str = "4f3a2b1c", **more: Any) -> dict[str, Any]:
    """A frame of the browser SDK: the script's URL as filename, no module, no abs_path."""
    url = SHOP.format(build=build)
    return {"filename": url, "function": function, "in_app": True, "lineno": 2} | more


def event(
    platform: str,
    type_: str,
    value: str,
    frames: list[dict[str, Any]],
    *,
    module: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An event of ``platform`` whose one exception was raised through ``frames``."""
    exc: dict[str, Any] = {"type": type_, "value": value, "frames": frames}
    if module is not None:
        exc["module"] = module
    out = {"service": "shop", "message": "", "platform": platform, "exceptions": [exc]}
    return out | fields


def browser(build: str = "4f3a2b1c", *, column: int = 13456, click: str = "onClick") -> dict:
    """A TypeError in the shop's minified bundle, as @sentry/browser sends it."""
    frames = [
        js_frame("HTMLButtonElement.<anonymous>", build=build, colno=9000),
        js_frame(click, build=build, colno=column),
        js_frame("handle/<", build=build, colno=column - 4456),
        js_frame("Object.renderTotal", build=build, colno=column + 211),
    ]
    return event(
        "javascript", "TypeError", "Cannot read properties of undefined (reading 'price')", frames
    )


def node(line: str = "  const total = order.items.reduce(sum, 0);", lineno: int = 14) -> dict:
    """A TypeError in a Node service, as @sentry/node sends it (modules made from paths)."""
    frames = [
        {"filename": "node:internal/process/task_queues", "module": "task_queues",
         "function": "process.processTicksAndRejections", "lineno": 95, "colno": 5,
         "in_app": False},
        {"filename": "/srv/api/node_modules/express/lib/router/layer.js",
         "module": "express.lib.router:layer", "function": "Layer.handle [as handle_request]",
         "lineno": 95, "colno": 5, "in_app": False,
         "context_line": "    fn(req, res, next);"},
        {"filename": "/srv/api/routes/orders.js", "module": "routes:orders",
         "function": "Object.?", "lineno": 31, "colno": 7, "in_app": True,
         "context_line": "router.post('/orders', async (req, res) => {"},
        {"filename": "/srv/api/lib/totals.js", "module": "lib:totals", "function": "orderTotal",
         "lineno": lineno, "colno": 29, "in_app": True, "context_line": line},
    ]  # fmt: skip
    return event("node", "TypeError", "Cannot read properties of undefined (reading 'reduce')",
                 frames)  # fmt: skip


def java(
    method: str = "perform",
    lineno: int = 8,
    line: str = 'throw new ApiException("Authentication failed, token expired!");',
    proxy: str = "$$EnhancerBySpringCGLIB$$4f2a9c1e",
    lambda_: str = "lambda$handle$0",
    lambda_class: str = "$$Lambda$1234/0x0000000801234567",
    accessor: str = "GeneratedMethodAccessor37",
) -> dict:
    """The Java SDK's sample: an ApiException through a Spring proxy, a lambda and reflection."""
    frames = [
        {"filename": "Thread.java", "module": "java.lang.Thread", "function": "run",
         "lineno": 833, "in_app": False},
        {"filename": "NativeMethodAccessorImpl.java",
         "module": "sun.reflect.NativeMethodAccessorImpl", "function": "invoke0",
         "in_app": False},
        {"filename": "", "module": f"jdk.internal.reflect.{accessor}", "function": "invoke",
         "in_app": False},
        {"filename": "SentryExceptionResolver.java",
         "module": "io.sentry.spring.SentryExceptionResolver", "function": "resolveException",
         "lineno": 57, "in_app": True},
        {"filename": "<generated>", "module": f"com.acme.shop.ApiController{proxy}",
         "function": "handle", "in_app": True},
        {"filename": "ApiController.java", "module": "com.acme.shop.ApiController",
         "function": lambda_, "lineno": 41, "in_app": True},
        {"filename": "", "module": f"com.acme.shop.ApiController{lambda_class}",
         "function": "apply", "in_app": True},
        {"filename": "ApiRequest.java", "module": "com.acme.shop.ApiRequest",
         "function": method, "lineno": lineno, "in_app": True, "context_line": line},
    ]  # fmt: skip
    return event("java", "ApiException", "Authentication failed, token expired!", frames,
                 module="com.acme.shop")  # fmt: skip


def go(function: str = "(*Server).createOrder", lineno: int = 88, line: str = "") -> dict:
    """A wrapped *os.PathError from a Go service, as sentry-go sends its frames."""
    frames = [
        {"filename": "server.go", "abs_path": "/usr/local/go/src/net/http/server.go",
         "module": "net/http", "function": "HandlerFunc.ServeHTTP", "lineno": 2136,
         "in_app": False},
        {"filename": "handlers.go", "abs_path": "/app/internal/api/handlers.go",
         "module": "github.com/acme/shop/internal/api", "function": function,
         "lineno": lineno, "in_app": True,
         "context_line": line or "\t\treturn fmt.Errorf(\"open catalog: %w\", err)"},
        {"filename": "file-not-found.go", "abs_path": "/app/file-not-found/file-not-found.go",
         "module": "main", "function": "main", "lineno": 25, "in_app": True,
         "context_line": "\t\tsentry.CaptureException(err)"},
    ]  # fmt: skip
    return event("go", "*fs.PathError", "open ./catalog.json: no such file or directory", frames)


def dotnet(function: str = "ProcessOrder", lineno: int = 42) -> dict:
    """An InvalidOperationException in ASP.NET Core, as sentry-dotnet sends its frames."""
    frames = [
        {"filename": "", "module": "Microsoft.AspNetCore.Hosting.Internal.HostingApplication",
         "function": "ProcessRequestAsync", "in_app": False,
         "context_line": "System.Threading.Tasks.Task ProcessRequestAsync(Context)",
         "package": "Microsoft.AspNetCore.Hosting, Version=2.1.1.0, Culture=neutral, "
         "PublicKeyToken=adb9793829ddae60"},
        {"filename": "OrdersController.cs", "abs_path": "/src/Shop/OrdersController.cs",
         "module": "Shop.Controllers.OrdersController", "function": "Post",
         "lineno": 27, "colno": 13, "in_app": True, "package": "Shop, Version=1.0.0.0"},
        {"filename": "OrderService.cs", "abs_path": "/src/Shop/OrderService.cs",
         "module": "Shop.Services.OrderService", "function": function, "lineno": lineno,
         "colno": 17, "in_app": True, "context_line": "throw new InvalidOperationException();"},
    ]  # fmt: skip
    return event("csharp", "System.InvalidOperationException", "Order 42 has no lines", frames)


def ruby(
    block: str = "block in create", template: str = "1234567_89012345", lineno: int = 12
) -> dict:
    """A NoMethodError in a Rails view, through a block and an ERB template (sentry-ruby)."""
    frames = [
        {"filename": "bundler/friendly_errors.rb",
         "abs_path": "/usr/local/bundle/gems/bundler-2.4.10/lib/bundler/friendly_errors.rb",
         "function": "with_friendly_errors", "lineno": 121, "in_app": False,
         "context_line": "    yield\n"},
        {"filename": "app/controllers/orders_controller.rb",
         "abs_path": "/srv/shop/app/controllers/orders_controller.rb", "function": block,
         "lineno": 9, "in_app": True, "context_line": "      render :show\n"},
        {"filename": "app/views/orders/show.html.erb",
         "abs_path": "/srv/shop/app/views/orders/show.html.erb",
         "function": f"_app_views_orders_show_html_erb__{template}", "lineno": lineno,
         "in_app": True, "context_line": "  <%= @order.customer.name %>\n"},
    ]  # fmt: skip
    return event("ruby", "NoMethodError", "undefined method `name' for nil:NilClass", frames)


def php(function: str = "class@anonymous/srv/shop/src/Kernel.php:31$0::handle") -> dict:
    """A TypeError raised in an anonymous class's method (sentry-php, paths made relative)."""
    frames = [
        {"filename": "vendor/symfony/http-kernel/HttpKernel.php",
         "abs_path": "/srv/shop/vendor/symfony/http-kernel/HttpKernel.php",
         "function": "Symfony\\Component\\HttpKernel\\HttpKernel::handleRaw", "lineno": 163,
         "in_app": False, "context_line": "        $response = $controller(...$arguments);"},
        {"filename": "src/Kernel.php", "abs_path": "/srv/shop/src/Kernel.php",
         "function": function, "lineno": 33, "in_app": True,
         "context_line": "        return $this->orders->total($request->get('id'));"},
        {"filename": "src/Controller/OrderController.php",
         "abs_path": "/srv/shop/src/Controller/OrderController.php",
         "function": "App\\Controller\\OrderController::total", "lineno": 58, "in_app": True,
         "context_line": "        return array_sum($order->lines);"},
    ]  # fmt: skip
    return event("php", "TypeError", "array_sum(): Argument #1 ($array) must be of type array",
                 frames)  # fmt: skip


def changed(doc: dict[str, Any], index: int, **fields: Any) -> dict[str, Any]:
    """A copy of ``doc`` whose raised exception's frame ``index`` has ``fields``."""
    out = copy.deepcopy(doc)
    out["exceptions"][-1]["frames"][index].update(fields)
    return out
