"""The built-in rule about a naive datetime met with an aware one (MR110)."""

from __future__ import annotations

import pytest

from tests.analyzers.review.rules_helpers import found

# -- MR110: naive-aware-datetime-mix -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            from datetime import UTC, datetime

            def age():
                return datetime.now() - datetime.now(UTC)
            """,
            [("MR110", 4)],
            id="now-minus-now-utc",
        ),
        pytest.param(
            """
            from datetime import datetime, timezone

            def expired():
                start = datetime.now(timezone.utc)
                return datetime.utcnow() > start
            """,
            [("MR110", 5)],
            id="utcnow-against-a-name",
        ),
        pytest.param(
            """
            from datetime import datetime, timezone

            def late(ts):
                deadline = datetime.fromtimestamp(ts).replace(tzinfo=timezone.utc)
                now = datetime.now()
                return now < deadline
            """,
            [("MR110", 6)],
            id="replace-tzinfo",
        ),
        pytest.param(
            """
            from datetime import datetime

            def later(moment):
                return moment.astimezone() < datetime.now()
            """,
            [("MR110", 4)],
            id="astimezone",
        ),
        pytest.param(
            """
            from datetime import datetime, timezone

            def same():
                return datetime.now() == datetime.now(timezone.utc)
            """,
            [("MR110", 4)],
            id="equality-never-true",
        ),
        pytest.param(
            """
            import datetime

            def expired():
                return datetime.datetime.now() < datetime.datetime.now(datetime.timezone.utc)
            """,
            [("MR110", 4)],
            id="module-import",
        ),
        pytest.param(
            """
            from datetime import UTC, datetime, timedelta

            def due():
                soon = datetime.now() + timedelta(minutes=5)
                return soon > datetime.now(UTC)
            """,
            [("MR110", 5)],
            id="naive-plus-timedelta",
        ),
        pytest.param(
            """
            from datetime import datetime

            def started():
                return datetime.now() > datetime.fromisoformat("2024-01-01T00:00:00+00:00")
            """,
            [("MR110", 4)],
            id="fromisoformat-with-offset",
        ),
        pytest.param(
            """
            from datetime import datetime, timezone

            def started():
                return datetime(2024, 1, 1, tzinfo=timezone.utc) < datetime.utcnow()
            """,
            [("MR110", 4)],
            id="constructor-with-tzinfo",
        ),
        pytest.param(
            """
            from datetime import UTC, datetime

            def expired():
                return datetime.now(tz=None) < datetime.now(UTC)
            """,
            [("MR110", 4)],
            id="now-tz-none",
        ),
        pytest.param(
            """
            from datetime import UTC, datetime

            def days():
                return (datetime.now(UTC) - datetime.today()).days
            """,
            [("MR110", 4)],
            id="today",
        ),
    ],
)
def test_a_naive_datetime_met_with_an_aware_one_is_flagged(
    code: str, expected: list[tuple[str, int]]
) -> None:
    assert found(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            """
            from datetime import UTC, datetime, timedelta

            def slow():
                start = datetime.now(UTC)
                return datetime.now(UTC) - start > timedelta(seconds=5)
            """,
            id="both-aware",
        ),
        pytest.param(
            """
            from datetime import datetime

            def elapsed():
                start = datetime.now()
                return datetime.now() - start
            """,
            id="both-naive",
        ),
        pytest.param(
            """
            from datetime import UTC, datetime

            def age(created_at):
                return datetime.now(UTC) - created_at
            """,
            id="parameter-not-judged",
        ),
        pytest.param(
            """
            from datetime import datetime

            def age(order):
                return datetime.utcnow() - order.created_at
            """,
            id="orm-attribute-not-judged",
        ),
        pytest.param(
            """
            from datetime import datetime
            from zoneinfo import ZoneInfo

            def ahead():
                return datetime.now(tz=ZoneInfo("Europe/Paris")) < datetime.now(ZoneInfo("UTC"))
            """,
            id="two-zones",
        ),
        pytest.param(
            """
            from datetime import UTC, datetime

            def expired(aware):
                moment = datetime.now()
                if aware:
                    moment = datetime.now(UTC)
                return moment < datetime.now(UTC)
            """,
            id="name-both-ways",
        ),
        pytest.param(
            """
            from datetime import UTC, datetime

            def stale():
                naive = datetime.now(UTC).replace(tzinfo=None)
                return naive < datetime.utcnow()
            """,
            id="replace-tzinfo-none",
        ),
        pytest.param(
            """
            from datetime import UTC, date, datetime

            def today():
                return date.today() == datetime.now(UTC).date()
            """,
            id="dates",
        ),
        pytest.param(
            """
            from datetime import UTC, datetime

            def same_object():
                return datetime.now() is datetime.now(UTC)
            """,
            id="identity",
        ),
    ],
)
def test_datetimes_of_one_kind_or_of_unknown_kind_are_not_flagged(code: str) -> None:
    assert found(code) == []
