"""The issue page through the served dashboard: what it shows of an issue, its finding (the
patch as a coloured diff), its events (navigation, the exception chain, scrubbed values),
deliveries, fix and comments; hostile text escaped; its live fragments; and the JSON API."""

from __future__ import annotations

import re

import pytest

from tests.db_helpers import store_events
from tests.web.issues_helpers import (
    HOSTILE_MESSAGE,
    HOSTILE_TAG,
    PATCH,
    element,
    hostile_event,
    link,
    seed_issue_page,
)
from tests.web.web_helpers import ServedWeb

pytestmark = pytest.mark.integration


async def test_the_page_shows_the_issue_its_finding_and_what_came_of_it(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    async with web.client("viewer") as client:
        response = await client.get(f"/issues/{seed.issue_id}")
    assert response.status_code == 200
    html = response.text
    # the header: title, culprit, level, state, counts, first and last seen with releases
    assert 'id="issue-title">ValueError: bad quantity in order 1' in html
    assert 'id="issue-culprit">app.module9.handler_1</p>' in html
    assert '<span class="badge level-error">error</span>' in html
    assert 'id="issue-status">unresolved</span>' in html
    assert re.search(r'<div class="value">4</div><div class="label">events</div>', html)
    assert re.search(r'id="first-seen">.*in release <span class="mono">1\.0</span>', html)
    assert html.count('<svg class="chart"') == 2  # the last 24 hours and the last 7 days
    # the newest finding, whole
    assert 'id="root-cause">the quantity is not a number</p>' in html
    assert 'id="finding-confidence">80%</dd>' in html
    assert 'id="finding-category">bad_input</dd>' in html
    assert '<span class="badge">ERROR</span> <span class="muted">(the finding says medium)' in html
    assert "<code>int(q[1])</code>" in html and "the quantity is not a number" in html
    assert 'id="suggested-fix">default it to 0' in html
    assert element(html, "verdict-right") is None  # a viewer judges nothing
    history = html[html.index('id="finding-history"') :]
    assert [int(i) for i in re.findall(r'data-finding-id="(\d+)"', history)] == seed.finding_ids[
        ::-1
    ]
    # the fix, the alert deliveries, the comment
    assert link(html, "fix-link") == f"/fixes/{seed.fix_id}"
    assert 'id="fix-state">proposed</span>' in html
    deliveries = html[html.index('id="deliveries"') :]
    assert "slack-oncall" in deliveries and "email-team" in deliveries
    assert '<span class="badge failed">failed</span>' in deliveries
    assert "http_error: 500 &lt;b&gt;down&lt;/b&gt;" in deliveries
    assert re.search(r'<td class="num">3</td>', deliveries)
    assert "looking &lt;i&gt;into&lt;/i&gt; it" in html


async def test_the_patch_is_a_coloured_diff_of_escaped_lines(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    async with web.client("viewer") as client:
        html = (await client.get(f"/issues/{seed.issue_id}")).text
    patch = html[html.index('id="fix-patch"') :]
    patch = patch[: patch.index("</pre>")]
    shown = re.findall(r'<span class="(\w+)">(.*?)</span>', patch)
    assert [kind for kind, _ in shown] == [
        "file",
        "file",
        "file",
        "hunk",
        "context",
        "del",  # "--- return ...": inside the hunk, a removed line, no file header
        "add",
        "context",
    ]
    assert shown[5][1] == "--- return int(q[1])  # &lt;b&gt;old&lt;/b&gt;"
    assert shown[6][1] == "+    return int(q.get(1, 0))  # \\u202e reversed"  # no bidi override
    assert "\u202e" not in patch
    assert len(shown) == len(PATCH.splitlines())


async def test_the_event_shows_its_chain_frames_context_and_tags(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    async with web.client("viewer") as client:
        html = (await client.get(f"/issues/{seed.issue_id}?event=first")).text
    assert element(html, "event")["data-event-id"] == seed.event_ids[0]  # type: ignore[index]
    chain = html[html.index('id="exception-chain"') : html.index('id="event-context"')]
    frames = re.findall(
        r'<div class="frame( in-app)?">\s*<span class="mono where">([^<]*)</span>', chain
    )
    assert frames[0] == ("", "/usr/lib/python3.11/json/decoder.py:10")  # a library frame
    assert all(in_app for in_app, _ in frames[1:]) and len(frames) == 10
    assert '<pre class="source"><code>return step1(request)</code></pre>' in chain
    assert "<strong>ValueError</strong>: bad quantity in order 1" in chain
    context = html[html.index('id="event-context"') : html.index('id="event-tags"')]
    scrubbed = '<span class="scrubbed" title="filtered by the scrubber">[Filtered]</span>'
    assert f"<dt>password</dt><dd>{scrubbed}</dd>" in context
    assert "hunter2" not in html
    assert "<dt>items</dt><dd>[1, 2]</dd>" in context and "<dt>order_id</dt><dd>7</dd>" in context
    tags = html[html.index('id="event-tags"') :]
    assert "<dt>browser</dt><dd>Firefox</dd>" in tags


async def test_event_navigation_walks_the_issue_s_events(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    ids = seed.event_ids
    async with web.client("viewer") as client:

        async def shown(path: str) -> tuple[str, str]:
            html = (await client.get(path)).text
            return element(html, "event")["data-event-id"], html  # type: ignore[index, return-value]

        latest, html = await shown(f"/issues/{seed.issue_id}")
        assert latest == ids[-1] and link(html, "event-next") is None
        walked = [latest]
        while (older := link(html, "event-prev")) is not None:
            event_id, html = await shown(older)
            walked.append(event_id)
        assert walked == ids[::-1]
        assert link(html, "event-first") == f"/issues/{seed.issue_id}?event=first"
        first, html = await shown(link(html, "event-first"))  # type: ignore[arg-type]
        assert first == ids[0] and link(html, "event-prev") is None
        second, html = await shown(link(html, "event-next"))  # type: ignore[arg-type]
        assert second == ids[1]
        latest_again, _ = await shown(link(html, "event-latest"))  # type: ignore[arg-type]
        assert latest_again == ids[-1]
        events = (await client.get(f"/api/v1/issues/{seed.issue_id}/events?limit=3")).json()
        assert [e["event_id"] for e in events["items"]] == ids[::-1][:3]
        rest = await client.get(
            f"/api/v1/issues/{seed.issue_id}/events", params={"cursor": events["next_cursor"]}
        )
        assert [e["event_id"] for e in rest.json()["items"]] == ids[:1]
        assert rest.json()["next_cursor"] is None
        # another issue's event, or none at all: not found
        other = (await client.get("/api/v1/issues/2/events")).json()["items"][0]["event_id"]
        assert (await client.get(f"/issues/{seed.issue_id}?event={other}")).status_code == 404
        assert (await client.get(f"/issues/{seed.issue_id}?event=nonsense")).status_code == 404
        one = (await client.get(f"/api/v1/events/{ids[0]}")).json()
        assert (
            one["issue_id"] == seed.issue_id
            and one["payload"]["context"]["password"] == "[Filtered]"
        )
        missing = await client.get("/api/v1/events/" + "0" * 32)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "event_not_found"


async def test_hostile_text_is_escaped_on_the_issue_page(web: ServedWeb) -> None:
    await store_events(web.database_url, [hostile_event(1)])
    async with web.client("viewer") as client:
        html = (await client.get("/issues/1")).text
        fragment = (await client.get("/issues/1?fragment=events")).text
    for shown in (html, fragment):
        assert HOSTILE_MESSAGE not in shown and HOSTILE_TAG not in shown and "<img" not in shown
    assert "<title>#1 ValueError: &lt;script&gt;alert(1)&lt;/script&gt; · mendline</title>" in html
    assert 'id="event-message">&lt;script&gt;alert(1)&lt;/script&gt;</dd>' in html
    assert "<dt>evil</dt><dd>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</dd>" in html
    assert "<dt>note</dt><dd>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</dd>" in fragment


async def test_each_part_refreshes_live_as_a_fragment_of_its_own(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    event_id = seed.event_ids[1]
    async with web.client("viewer") as client:
        html = (await client.get(f"/issues/{seed.issue_id}?event={event_id}")).text
        assert f'data-live="/live?topic=issue-{seed.issue_id}"' in html
        for part, element_id in (
            ("header", "issue-header"),
            ("finding", "finding"),
            ("events", "events"),
            ("activity", "activity"),
        ):
            found = element(html, element_id)
            assert found is not None, part
            assert found["hx-trigger"] == f"sse:issue-{seed.issue_id}"
            assert found["data-live-every"] == "1000"  # live.js: at most once a second
            assert found["hx-get"] == f"/issues/{seed.issue_id}?event={event_id}&fragment={part}"
            fragment = await client.get(found["hx-get"])
            assert fragment.status_code == 200
            assert element(fragment.text, element_id) is not None
            assert "<html" not in fragment.text
        events = (
            await client.get(f"/issues/{seed.issue_id}?event={event_id}&fragment=events")
        ).text
        assert element(events, "event")["data-event-id"] == event_id  # type: ignore[index]


async def test_the_api_answers_what_the_page_shows(web: ServedWeb) -> None:
    seed = await seed_issue_page(web.database_url)
    async with web.client("viewer") as client:
        answer = (await client.get(f"/api/v1/issues/{seed.issue_id}")).json()
        missing = await client.get("/api/v1/issues/999")
        page_missing = await client.get("/issues/999")
    issue = answer["issue"]
    assert (issue["id"], issue["title"], issue["times_seen"]) == (
        1,
        "ValueError: bad quantity in order 1",
        4,
    )
    assert issue["state"] == "unresolved" and issue["status_label"] == "unresolved"
    finding = answer["finding"]
    assert finding["id"] == seed.finding_ids[-1] and finding["fix_patch"] == PATCH
    assert finding["evidence"][0]["line"] == "int(q[1])" and "prompt" not in finding
    assert len(answer["trend"]) == 24 and len(answer["trend_7d"]) == 168
    assert answer["events_24h"] == sum(h["events"] for h in answer["trend"]) == 4
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "issue_not_found"
    assert page_missing.status_code == 404 and "there is no issue 999" in page_missing.text


async def test_nobody_logged_in_is_sent_to_log_in(web: ServedWeb) -> None:
    async with web.client() as client:
        page = await client.get("/issues/1")
        api = await client.get("/api/v1/issues")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert api.status_code == 401
