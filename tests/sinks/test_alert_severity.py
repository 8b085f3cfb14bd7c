"""The severity of an alert, from the issue's level, its finding and the trigger's kind."""

from __future__ import annotations

import pytest

from mendline.sinks._alerts import alert_severity


@pytest.mark.parametrize(
    ("level", "finding", "kind", "expected"),
    [
        ("critical", None, "new_issue", "critical"),
        ("error", None, "new_issue", "error"),
        ("warning", None, "new_issue", "warning"),
        ("info", None, "new_issue", "info"),
        ("debug", None, "new_issue", "info"),
        ("error", "critical", "new_issue", "critical"),  # the finding says it is worse
        ("warning", "high", "new_issue", "error"),
        ("error", "low", "new_issue", "error"),  # a finding never lowers it
        ("warning", None, "frequency", "error"),  # a spike: one step up
        ("info", None, "regression", "warning"),
        ("error", None, "frequency", "error"),  # ...but never to paging by itself
        ("critical", None, "regression", "critical"),
    ],
)
def test_alert_severity(level: str, finding: str | None, kind: str, expected: str) -> None:
    assert alert_severity(level, finding, kind) == expected
