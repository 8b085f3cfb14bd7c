"""The built-in rule about parsing input from outside with nothing to catch bad text
(MR101)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR101: unchecked-input-parse ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            from flask import request

            @app.get("/orders")
            def orders():
                qty = int(request.args["qty"])
                return {"qty": qty}
            """,
            [("MR101", 5)],
            id="flask-args-item",
        ),
        pytest.param(
            """
            from flask import request

            @app.get("/orders")
            def orders():
                page = int(request.args.get("page", "1"))
                return list_orders(page)
            """,
            [("MR101", 5)],
            id="flask-args-get-with-a-text-default",
        ),
        pytest.param(
            """
            import json

            def create(request):
                data = json.loads(request.body)
                return save(data)
            """,
            [("MR101", 4)],
            id="django-json-body",
        ),
        pytest.param(
            """
            def price(request):
                amount = float(request.POST.get("price", "0"))
                return amount * 1.2
            """,
            [("MR101", 2)],
            id="django-post-float",
        ),
        pytest.param(
            """
            from decimal import Decimal

            def pay(request):
                data = request.json
                return charge(Decimal(data.get("amount", "0")))
            """,
            [("MR101", 5)],
            id="decimal-of-json",
        ),
        pytest.param(
            """
            from datetime import datetime

            def report(request):
                day = datetime.strptime(request.GET.get("day", ""), "%Y-%m-%d")
                return build(day)
            """,
            [("MR101", 4)],
            id="strptime-of-query",
        ),
        pytest.param(
            """
            from datetime import date

            async def report(request):
                day = date.fromisoformat(request.query_params.get("day", ""))
                return await build(day)
            """,
            [("MR101", 4)],
            id="date-fromisoformat-of-starlette-query",
        ),
        pytest.param(
            """
            import sys

            def main():
                count = int(sys.argv[1])
                run(count)
            """,
            [("MR101", 4)],
            id="argv",
        ),
        pytest.param(
            """
            def ask():
                return int(input("How many? "))
            """,
            [("MR101", 2)],
            id="input",
        ),
        pytest.param(
            """
            def page(request):
                text = request.GET.get("page", "1")
                number = int(text)
                return number
            """,
            [("MR101", 3)],
            id="through-a-name",
        ),
        pytest.param(
            """
            import json

            async def hook(request):
                body = await request.text()
                return json.loads(body)
            """,
            [("MR101", 5)],
            id="aiohttp-text-then-json-loads",
        ),
        pytest.param(
            """
            from flask import request

            @app.get("/orders")
            def orders():
                try:
                    qty = int(request.args["qty"])
                except KeyError:
                    abort(400)
                return {"qty": qty}
            """,
            [("MR101", 6)],
            id="try-catching-only-keyerror",
        ),
        pytest.param(
            """
            @routes.get("/users/{user_id}")
            async def user(request):
                return await load(int(request.match_info["user_id"]))
            """,
            [("MR101", 3)],
            id="path-parameter-any-text",
        ),
        pytest.param(
            r"""
            @routes.get(r"/users/{user_id:\d+}/{name}")
            async def user(request):
                return int(request.match_info["name"])
            """,
            [("MR101", 3)],
            id="path-parameter-other-than-the-digits-one",
        ),
        pytest.param(
            """
            import os

            def view(request):
                limit = int(os.getenv("LIMIT", "10"))
                return list_items(limit)
            """,
            [("MR101", 4)],
            id="environment-parsed-per-request",
        ),
        pytest.param(
            """
            import requests

            def remaining():
                response = requests.get(URL, timeout=5)
                return int(response.text)
            """,
            [("MR101", 5)],
            id="another-services-text",
        ),
        pytest.param(
            """
            def view(request):
                later = lambda: int(request.GET.get("n", "0"))
                return later
            """,
            [("MR101", 2)],
            id="in-a-lambda",
        ),
    ],
)
def test_parsing_external_text_with_nothing_to_catch_bad_text_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            from flask import request

            @app.get("/orders")
            def orders():
                try:
                    qty = int(request.args["qty"])
                except ValueError:
                    abort(400, "qty must be a whole number")
                return {"qty": qty}
            """,
            id="try-valueerror",
        ),
        pytest.param(
            """
            def view(request):
                try:
                    page = int(request.GET.get("page", 1))
                except (TypeError, ValueError):
                    page = 1
                return page
            """,
            id="try-tuple",
        ),
        pytest.param(
            """
            def view(request):
                try:
                    price = float(request.POST.get("price", "0"))
                except Exception:
                    return bad_request()
                return price
            """,
            id="try-exception",
        ),
        pytest.param(
            """
            import json

            def create(request):
                try:
                    data = json.loads(request.body)
                except json.JSONDecodeError:
                    return bad_request()
                return save(data)
            """,
            id="try-jsondecodeerror",
        ),
        pytest.param(
            """
            import json

            def create(request):
                try:
                    data = json.loads(request.body)
                except ValueError:
                    return bad_request()
                return save(data)
            """,
            id="try-valueerror-catches-jsondecodeerror",
        ),
        pytest.param(
            """
            import decimal

            def pay(request):
                try:
                    amount = decimal.Decimal(request.POST.get("amount", "0"))
                except decimal.InvalidOperation:
                    return bad_request()
                return charge(amount)
            """,
            id="try-invalidoperation",
        ),
        pytest.param(
            """
            from decimal import Decimal

            def pay(request):
                try:
                    amount = Decimal(request.POST.get("amount", "0"))
                except ArithmeticError:
                    return bad_request()
                return charge(amount)
            """,
            id="try-arithmeticerror",
        ),
        pytest.param(
            """
            import contextlib

            def view(request):
                page = 1
                with contextlib.suppress(ValueError):
                    page = int(request.GET.get("page", "1"))
                return page
            """,
            id="suppress-valueerror",
        ),
        pytest.param(
            """
            def view(request):
                raw = request.GET.get("page", "1")
                if not raw.isdigit():
                    return bad_request()
                return int(raw)
            """,
            id="isdigit-first",
        ),
        pytest.param(
            r"""
            import re

            def view(request):
                raw = request.GET.get("n", "")
                if not re.fullmatch(r"\d{1,6}", raw):
                    return bad_request()
                return int(raw)
            """,
            id="regex-first",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                n = data.get("n")
                if not isinstance(n, int):
                    return bad_request()
                return int(n)
            """,
            id="isinstance-first",
        ),
        pytest.param(
            """
            def view(request):
                if (raw := request.GET.get("n")) and raw.isdigit():
                    return int(raw)
                return bad_request()
            """,
            id="walrus-isdigit",
        ),
        pytest.param(
            """
            def view(request):
                size = request.GET.get("size", "10")
                if size not in ("10", "25", "50"):
                    return bad_request()
                return int(size)
            """,
            id="checked-against-a-fixed-list",
        ),
        pytest.param(
            """
            import jsonschema

            def view(request):
                data = request.json
                jsonschema.validate(instance=data, schema=ORDER)
                return int(data["qty"])
            """,
            id="schema-validate",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                data = OrderSchema().load(data)
                return int(data["qty"])
            """,
            id="schema-load-rebinds",
        ),
        pytest.param(
            """
            @use_args(ORDER_ARGS)
            def view(request):
                return int(request.json["qty"])
            """,
            id="validating-decorator",
        ),
        pytest.param(
            """
            def view(request):
                form = OrderForm(request.POST)
                if form.is_valid():
                    return int(form.cleaned_data["qty"])
                return bad_request()
            """,
            id="django-form",
        ),
        pytest.param(
            """
            from flask import request

            @app.get("/orders")
            def orders():
                page = request.args.get("page", 1, type=int)
                return list_orders(page)
            """,
            id="flask-args-get-type-int",
        ),
        pytest.param(
            """
            from flask import request

            @app.errorhandler(ValueError)
            def bad_value(error):
                return {"error": str(error)}, 400

            @app.get("/orders")
            def orders():
                return {"qty": int(request.args["qty"])}
            """,
            id="app-wide-valueerror-handler",
        ),
        pytest.param(
            """
            import os

            PORT = int(os.environ["PORT"])
            TIMEOUT = float(os.getenv("TIMEOUT", "5"))
            """,
            id="settings-at-import",
        ),
        pytest.param(
            """
            import os

            def load_settings():
                return int(os.environ.get("PORT", "8000"))
            """,
            id="settings-function",
        ),
        pytest.param(
            """
            import os

            def main():
                workers = int(os.environ["WORKERS"])
                serve(workers)
            """,
            id="environment-outside-handlers",
        ),
        pytest.param(
            """
            def main(argv=None):
                args = parser.parse_args(argv)
                return int(args.count)
            """,
            id="argparse",
        ),
        pytest.param(
            """
            @router.get("/items/{item_id}")
            async def read_item(item_id: int):
                return {"id": int(item_id)}
            """,
            id="fastapi-typed-parameter",
        ),
        pytest.param(
            r"""
            @routes.get(r"/users/{user_id:\d+}")
            async def user(request):
                return await load(int(request.match_info["user_id"]))
            """,
            id="aiohttp-digits-only-route",
        ),
        pytest.param(
            r"""
            @routes.get(r"/users/{user_id:\d+}")
            async def user(request):
                user_id = request.match_info["user_id"]
                return await load(int(user_id))
            """,
            id="aiohttp-digits-only-route-through-a-name",
        ),
        pytest.param(
            """
            @app.route("/items/{item_id:int}")
            async def item(request):
                return await load(int(request.path_params["item_id"]))
            """,
            id="starlette-int-convertor",
        ),
        pytest.param(
            """
            import json

            def load(path):
                with open(path) as handle:
                    return json.loads(handle.read())
            """,
            id="json-of-a-local-file",
        ),
        pytest.param(
            """
            def view(request):
                try:
                    qty = int(request.GET.get("qty", "1"))
                except ValueError:
                    qty = 1
                return float(qty)
            """,
            id="already-parsed",
        ),
        pytest.param(
            """
            def view(request):
                return int(len(request.GET))
            """,
            id="a-number-of-the-input",
        ),
        pytest.param(
            """
            def total(amount):
                return int(amount) * 2
            """,
            id="a-parameter",
        ),
    ],
)
def test_parsing_caught_checked_or_not_external_text_is_not_flagged(code: str) -> None:
    assert found(code) == []
