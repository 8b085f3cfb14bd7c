"""The built-in rules about calls: an HTTP call that can wait forever (MR107) and a blocking
call in a coroutine (MR113)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR107: http-call-without-timeout ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            import requests

            def rates(url):
                return requests.get(url).json()
            """,
            [("MR107", 4)],
            id="requests-get",
        ),
        pytest.param(
            """
            import requests

            def notify(url, body):
                requests.post(url, json=body, timeout=None)
            """,
            [("MR107", 4)],
            id="requests-timeout-none",
        ),
        pytest.param(
            """
            import requests as http

            def check(url):
                return http.head(url, allow_redirects=True).ok
            """,
            [("MR107", 4)],
            id="requests-aliased",
        ),
        pytest.param(
            """
            from requests import request

            def call(url):
                return request("GET", url)
            """,
            [("MR107", 4)],
            id="requests-request-imported",
        ),
        pytest.param(
            """
            import requests

            def rates(url):
                session = requests.Session()
                return session.get(url)
            """,
            [("MR107", 5)],
            id="requests-session",
        ),
        pytest.param(
            """
            import requests

            def rates(url):
                with requests.Session() as session:
                    return session.get(url)
            """,
            [("MR107", 5)],
            id="requests-session-in-with",
        ),
        pytest.param(
            """
            import requests

            def rates(url):
                return requests.Session().get(url)
            """,
            [("MR107", 4)],
            id="requests-session-chained",
        ),
        pytest.param(
            """
            import requests

            ping = lambda url: requests.get(url)
            """,
            [("MR107", 3)],
            id="in-a-lambda",
        ),
        pytest.param(
            """
            import httpx

            def rates(url):
                return httpx.get(url, timeout=None)
            """,
            [("MR107", 4)],
            id="httpx-timeout-none",
        ),
        pytest.param(
            """
            import httpx

            def rates(url):
                with httpx.Client(timeout=None) as client:
                    return client.get(url)
            """,
            [("MR107", 4)],
            id="httpx-client-timeout-none",
        ),
        pytest.param(
            """
            import httpx

            async def rates(url):
                async with httpx.AsyncClient() as client:
                    return await client.get(url, timeout=None)
            """,
            [("MR107", 5)],
            id="httpx-request-timeout-none",
        ),
        pytest.param(
            """
            from urllib.request import urlopen

            def rates(url):
                return urlopen(url).read()
            """,
            [("MR107", 4)],
            id="urlopen",
        ),
        pytest.param(
            """
            import aiohttp

            async def rates(url):
                async with aiohttp.ClientSession() as session:
                    async with session.get(url) as response:
                        return await response.json()
            """,
            [("MR107", 4)],
            id="aiohttp-session-and-request-without",
        ),
    ],
)
def test_an_http_call_that_can_wait_forever_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            import requests

            def rates(url):
                return requests.get(url, timeout=5).json()
            """,
            id="requests-timeout",
        ),
        pytest.param(
            """
            import requests

            def rates(url):
                return requests.post(url, json={}, timeout=(3.05, 27))
            """,
            id="requests-connect-and-read-timeout",
        ),
        pytest.param(
            """
            import requests

            def rates(url, **options):
                return requests.get(url, **options)
            """,
            id="keyword-arguments",
        ),
        pytest.param(
            """
            import requests

            def rates(url):
                session = requests.Session()
                return session.get(url, timeout=5)
            """,
            id="requests-session-timeout",
        ),
        pytest.param(
            """
            class Rates:
                def fetch(self, url):
                    return self.session.get(url)
            """,
            id="client-made-elsewhere",
        ),
        pytest.param(
            """
            import httpx

            def rates(url):
                with httpx.Client() as client:
                    return httpx.get(url), client.get(url)
            """,
            id="httpx-default-timeout",
        ),
        pytest.param(
            """
            import urllib.request

            def rates(url):
                return urllib.request.urlopen(url, timeout=10).read()
            """,
            id="urlopen-timeout",
        ),
        pytest.param(
            """
            import urllib.request

            def rates(url):
                return urllib.request.urlopen(url, None, 10).read()
            """,
            id="urlopen-positional-timeout",
        ),
        pytest.param(
            """
            import aiohttp

            async def rates(url):
                timeout = aiohttp.ClientTimeout(total=10)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with session.get(url) as response:
                        return await response.json()
            """,
            id="aiohttp-session-timeout",
        ),
        pytest.param(
            """
            import aiohttp

            async def rates(url):
                async with aiohttp.ClientSession() as session:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                        return await r.json()
            """,
            id="aiohttp-request-timeout",
        ),
        pytest.param(
            """
            import aiohttp

            class Rates:
                async def start(self):
                    self.session = aiohttp.ClientSession()
            """,
            id="aiohttp-session-kept-for-later",
        ),
        pytest.param(
            """
            def rate(rates, currency):
                return rates.get(currency)
            """,
            id="a-mappings-get",
        ),
    ],
)
def test_an_http_call_with_a_timeout_or_one_not_seen_is_not_flagged(code: str) -> None:
    assert found(code) == []


# -- MR113: blocking-call-in-async ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            import time

            async def poll():
                time.sleep(1)
            """,
            [("MR113", 4)],
            id="time-sleep",
        ),
        pytest.param(
            """
            from time import sleep

            async def poll():
                sleep(0.5)
            """,
            [("MR113", 4)],
            id="sleep-imported",
        ),
        pytest.param(
            """
            import requests

            async def rates(url):
                return requests.get(url, timeout=5).json()
            """,
            [("MR113", 4)],
            id="requests",
        ),
        pytest.param(
            """
            import requests

            async def rates(url):
                session = requests.Session()
                return session.get(url, timeout=5)
            """,
            [("MR113", 5)],
            id="requests-session",
        ),
        pytest.param(
            """
            from urllib.request import urlopen

            async def rates(url):
                return urlopen(url, timeout=5).read()
            """,
            [("MR113", 4)],
            id="urlopen",
        ),
        pytest.param(
            """
            import subprocess

            async def build():
                subprocess.run(["make"], check=True)
            """,
            [("MR113", 4)],
            id="subprocess-run",
        ),
        pytest.param(
            """
            import subprocess

            async def version():
                return subprocess.check_output(["git", "describe"])
            """,
            [("MR113", 4)],
            id="subprocess-check-output",
        ),
        pytest.param(
            """
            import os

            async def build():
                os.system("make")
            """,
            [("MR113", 4)],
            id="os-system",
        ),
        pytest.param(
            """
            import socket

            async def probe(host):
                return socket.create_connection((host, 80), timeout=3)
            """,
            [("MR113", 4)],
            id="blocking-socket",
        ),
        pytest.param(
            """
            import time

            class Worker:
                async def run(self):
                    time.sleep(0.5)
            """,
            [("MR113", 5)],
            id="async-method",
        ),
        pytest.param(
            """
            import time

            async def pause_each(delays):
                return [time.sleep(delay) for delay in delays]
            """,
            [("MR113", 4)],
            id="in-a-comprehension",
        ),
    ],
)
def test_a_blocking_call_in_a_coroutine_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            import asyncio

            async def poll():
                await asyncio.sleep(1)
            """,
            id="asyncio-sleep",
        ),
        pytest.param(
            """
            import time

            async def yield_now():
                time.sleep(0)
            """,
            id="sleep-zero",
        ),
        pytest.param(
            """
            import time

            def poll():
                time.sleep(1)
            """,
            id="plain-function",
        ),
        pytest.param(
            """
            import asyncio
            import requests

            async def rates(url):
                return await asyncio.to_thread(requests.get, url, timeout=5)
            """,
            id="to-thread",
        ),
        pytest.param(
            """
            import asyncio
            import requests

            async def rates(url):
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(None, lambda: requests.get(url, timeout=5))
            """,
            id="executor-lambda",
        ),
        pytest.param(
            """
            import asyncio
            import time

            async def poll():
                def wait():
                    time.sleep(1)

                await asyncio.to_thread(wait)
            """,
            id="nested-plain-function",
        ),
        pytest.param(
            """
            import asyncio

            async def build():
                process = await asyncio.create_subprocess_exec("make")
                await process.wait()
            """,
            id="async-subprocess",
        ),
        pytest.param(
            """
            import httpx

            async def rates(url):
                async with httpx.AsyncClient() as client:
                    return (await client.get(url)).json()
            """,
            id="async-http-client",
        ),
        pytest.param(
            """
            import asyncio
            import functools
            import time

            async def poll():
                await asyncio.to_thread(functools.partial(time.sleep, 1))
            """,
            id="partial-in-a-thread",
        ),
    ],
)
def test_an_async_equivalent_or_a_call_in_a_thread_is_not_flagged(code: str) -> None:
    assert found(code) == []
