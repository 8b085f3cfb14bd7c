"""The built-in rules about keys: a key looked up in input from outside where a missing key
raises KeyError (MR102), and the environment read in a request handler (MR109)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR102: unchecked-key-lookup -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            def search(request):
                query = request.GET["q"]
                return run(query)
            """,
            [("MR102", 2)],
            id="django-get",
        ),
        pytest.param(
            """
            def signup(request):
                return create(request.POST["email"])
            """,
            [("MR102", 2)],
            id="django-post",
        ),
        pytest.param(
            """
            def view(request):
                return request.META["HTTP_X_TOKEN"]
            """,
            [("MR102", 2)],
            id="django-meta",
        ),
        pytest.param(
            """
            from flask import request

            @app.post("/users")
            def create():
                data = request.get_json()
                return save(data["email"])
            """,
            [("MR102", 6)],
            id="flask-json-body",
        ),
        pytest.param(
            """
            from flask import request

            @app.post("/users")
            def create():
                return save(request.json["email"])
            """,
            [("MR102", 5)],
            id="flask-request-json",
        ),
        pytest.param(
            """
            class Users(APIView):
                def post(self, request):
                    return save(request.data["email"])
            """,
            [("MR102", 3)],
            id="drf-request-data",
        ),
        pytest.param(
            """
            class Search(View):
                def get(self):
                    return run(self.request.GET["q"])
            """,
            [("MR102", 3)],
            id="class-based-view",
        ),
        pytest.param(
            """
            async def search(request):
                return await run(request.query_params["q"])
            """,
            [("MR102", 2)],
            id="starlette-query-params",
        ),
        pytest.param(
            """
            import requests

            def items():
                payload = requests.get(URL, timeout=5).json()
                return payload["data"]["items"]
            """,
            [("MR102", 5)],
            id="another-services-json",
        ),
        pytest.param(
            """
            import requests

            def ids():
                payload = requests.get(URL, timeout=5).json()
                out = []
                for item in payload.get("items", []):
                    out.append(item["id"])
                return out
            """,
            [("MR102", 7)],
            id="items-of-json",
        ),
        pytest.param(
            """
            import json

            def consume(message):
                event = json.loads(message.value)
                return route(event["type"])
            """,
            [("MR102", 5)],
            id="json-from-a-queue",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                if "a" in data:
                    return data["b"]
                return None
            """,
            [("MR102", 4)],
            id="another-key-tested",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                try:
                    return int(data["qty"])
                except ValueError:
                    return 0
            """,
            [("MR102", 4)],
            id="try-catching-only-valueerror",
        ),
        pytest.param(
            """
            from decimal import Decimal

            def pay(request):
                data = request.json
                return charge(Decimal(data["amount"]))
            """,
            [("MR101", 5), ("MR102", 5)],
            id="with-a-parse-both-rules",
        ),
    ],
)
def test_a_key_lookup_in_external_input_with_nothing_to_handle_a_missing_key_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            from flask import request

            @app.get("/search")
            def search():
                return run(
                    request.args["q"],
                    request.form["a"],
                    request.values["v"],
                    request.headers["X-Token"],
                    request.cookies["session"],
                    request.files["upload"],
                )
            """,
            id="flask-multidicts-answer-400",
        ),
        pytest.param(
            """
            async def user(request):
                return await load(request.match_info["id"], request.path_params["id"])
            """,
            id="path-parameters",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                if "email" not in data:
                    return bad_request("email is required")
                return save(data["email"])
            """,
            id="in-test-first",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                try:
                    return save(data["email"])
                except KeyError:
                    return bad_request("email is required")
            """,
            id="try-keyerror",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                try:
                    return save(data["email"])
                except LookupError:
                    return bad_request("email is required")
            """,
            id="try-lookuperror",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                return save(data.get("email", ""))
            """,
            id="get-with-default",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                if data.get("email"):
                    return save(data["email"])
                return bad_request()
            """,
            id="get-tested-first",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                missing = [key for key in ("email", "name") if key not in data]
                if missing:
                    return bad_request(missing)
                return save(data["email"], data["name"])
            """,
            id="required-keys-loop",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                if not all(key in data for key in REQUIRED):
                    return bad_request()
                return save(data["email"])
            """,
            id="required-keys-all",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                data.setdefault("tags", [])
                data["tags"].append("new")
                return save(data)
            """,
            id="setdefault-first",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                validate(data, ORDER_SCHEMA)
                return save(data["customer"]["email"])
            """,
            id="schema-validate-covers-nested-keys",
        ),
        pytest.param(
            """
            @expects_json(ORDER_SCHEMA)
            def view(request):
                return save(request.json["email"])
            """,
            id="validating-decorator",
        ),
        pytest.param(
            """
            def view(request):
                data = UserSchema().load(request.json)
                return save(data["email"])
            """,
            id="schema-load",
        ),
        pytest.param(
            """
            def view(request, key):
                data = request.json
                return data[0], data[key]
            """,
            id="index-and-computed-key",
        ),
        pytest.param(
            """
            def view(request):
                data = request.json
                data["seen"] = True
                return save(data)
            """,
            id="assignment",
        ),
        pytest.param(
            """
            def view(request):
                defaults = {"page": 1}
                return defaults["page"]
            """,
            id="own-dict",
        ),
        pytest.param(
            """
            import sys

            def main():
                return run(sys.argv[1:])
            """,
            id="argv-slice",
        ),
    ],
)
def test_a_key_lookup_handled_or_not_in_external_input_is_not_flagged(code: str) -> None:
    assert found(code) == []


# -- MR109: environ-read-per-request -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            import os

            @app.route("/pay")
            def pay():
                return charge(os.environ["API_KEY"])
            """,
            [("MR109", 5)],
            id="flask-route",
        ),
        pytest.param(
            """
            import os

            def pay(request):
                key = os.environ["API_KEY"]
                return charge(key)
            """,
            [("MR109", 4)],
            id="function-taking-a-request",
        ),
        pytest.param(
            """
            import os

            @router.get("/pay")
            async def pay():
                return await charge(os.environ["API_KEY"])
            """,
            [("MR109", 5)],
            id="fastapi-route",
        ),
        pytest.param(
            """
            from os import environ

            def pay(request):
                return charge(environ["API_KEY"])
            """,
            [("MR109", 4)],
            id="imported-environ",
        ),
        pytest.param(
            """
            import os

            class Orders(ViewSet):
                @action(detail=True)
                def refund(self, request, pk=None):
                    return refund(pk, os.environ["API_KEY"])
            """,
            [("MR109", 6)],
            id="drf-action",
        ),
    ],
)
def test_the_environment_read_in_a_request_handler_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            import os

            API_KEY = os.environ["API_KEY"]

            def pay(request):
                return charge(API_KEY)
            """,
            id="read-at-import",
        ),
        pytest.param(
            """
            import os

            def pay(request):
                return charge(os.environ.get("API_KEY", ""))
            """,
            id="get-with-default",
        ),
        pytest.param(
            """
            import os

            def pay(request):
                return charge(os.getenv("API_KEY"))
            """,
            id="getenv",
        ),
        pytest.param(
            """
            import os

            def get_settings(request=None):
                return Settings(os.environ["API_KEY"])
            """,
            id="settings-function",
        ),
        pytest.param(
            """
            import os

            def load_config(req):
                return Config(os.environ["API_KEY"])
            """,
            id="config-function",
        ),
        pytest.param(
            """
            import os

            def connect():
                return open_pool(os.environ["DATABASE_URL"])
            """,
            id="not-a-handler",
        ),
        pytest.param(
            """
            import os

            @click.command()
            def main():
                run(os.environ["DATABASE_URL"])
            """,
            id="cli-command",
        ),
        pytest.param(
            """
            import os

            @app.task
            def nightly():
                run(os.environ["DATABASE_URL"])
            """,
            id="task",
        ),
        pytest.param(
            """
            import os

            def pay(request):
                if "API_KEY" not in os.environ:
                    return unavailable()
                return charge(os.environ["API_KEY"])
            """,
            id="in-test-first",
        ),
        pytest.param(
            """
            import os

            def pay(request):
                try:
                    key = os.environ["API_KEY"]
                except KeyError:
                    return unavailable()
                return charge(key)
            """,
            id="try-keyerror",
        ),
        pytest.param(
            """
            import os

            def debug(request):
                os.environ["DEBUG"] = "1"
            """,
            id="write",
        ),
        pytest.param(
            """
            import os

            def create_app():
                app = Flask(__name__)
                app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
                return app
            """,
            id="app-factory",
        ),
    ],
)
def test_the_environment_read_outside_request_handlers_or_handled_is_not_flagged(
    code: str,
) -> None:
    assert found(code) == []
