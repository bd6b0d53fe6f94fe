"""The JSON API on every storage backend: filters, pages, groups and bad input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.dashboard.conftest import Dashboard, entry

MakeDashboard = Callable[..., Dashboard]
CSRF = {"X-Flare-CSRF": "1"}


@pytest.fixture
def seeded(make_dashboard: MakeDashboard) -> Dashboard:
    """A dashboard with five entries in three groups, the newest last."""
    dashboard = make_dashboard()
    dashboard.write(
        [
            entry(
                90,
                level="WARNING",
                event="slow_query",
                message="orders query took 2.5 s",
                endpoint="/orders",
                http_status=200,
            ),
            entry(
                30,
                event="payment_failed",
                message="card declined for order 42",
                endpoint="/payments",
                http_method="POST",
                http_status=402,
                context={"order": 42},
            ),
            entry(
                20,
                message="division by zero",
                error="ZeroDivisionError: division by zero",
                exception_type="ZeroDivisionError",
                stack_trace="Traceback (most recent call last):\n  ...",
                endpoint="/stats",
                http_status=500,
            ),
            entry(10, message="division by zero", endpoint="/stats", http_status=500),
            entry(5, message="division by zero", endpoint="/stats", http_status=500),
        ]
    )
    return dashboard


def logs(dashboard: Dashboard, **params: object) -> dict[str, object]:
    response = dashboard.client.get("/flare/api/logs", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def messages(page: dict[str, object]) -> list[str]:
    return [item["message"] for item in page["items"]]  # type: ignore[attr-defined, index]


class TestLogs:
    def test_newest_first(self, seeded: Dashboard) -> None:
        page = logs(seeded)
        assert messages(page)[-1] == "orders query took 2.5 s"
        assert len(messages(page)) == 5
        assert page["next_cursor"] is None

    def test_entry_field_names(self, seeded: Dashboard) -> None:
        item = logs(seeded, event="payment_failed")["items"][0]  # type: ignore[index]
        assert item["http_method"] == "POST"
        assert item["http_status"] == 402
        assert item["context"] == {"order": 42}
        assert item["fingerprint"] == "fp-payment_failed"

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"level": "WARNING"}, 1),
            ({"level": "warning"}, 1),
            ({"event": "payment_failed"}, 1),
            ({"status": "500"}, 3),
            ({"endpoint": "/stats"}, 3),
            ({"fingerprint": "fp-unhandled_exception"}, 3),
            ({"q": "declined"}, 1),
            ({"q": "DIVISION"}, 3),
            ({"level": "ERROR", "status": "402"}, 1),
            ({"q": "no such text"}, 0),
        ],
    )
    def test_filter(
        self, seeded: Dashboard, params: dict[str, str], expected: int
    ) -> None:
        assert len(messages(logs(seeded, **params))) == expected

    def test_time_range(self, seeded: Dashboard) -> None:
        now = datetime.now(UTC)
        since = (now - timedelta(minutes=25)).isoformat()
        until = (now - timedelta(minutes=7)).isoformat()
        page = logs(seeded, since=since, until=until)
        assert len(messages(page)) == 2

    def test_time_range_accepts_z_suffix(self, seeded: Dashboard) -> None:
        since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert len(messages(logs(seeded, since=since))) == 4

    def test_cursor_pages(self, seeded: Dashboard) -> None:
        first = logs(seeded, limit=2)
        second = logs(seeded, limit=2, cursor=first["next_cursor"])
        third = logs(seeded, limit=2, cursor=second["next_cursor"])
        seen = messages(first) + messages(second) + messages(third)
        assert seen == messages(logs(seeded))
        assert third["next_cursor"] is None

    def test_cursor_stable_under_writes(self, seeded: Dashboard) -> None:
        first = logs(seeded, limit=2)
        seeded.write([entry(0, message="arrived after page one")])
        second = logs(seeded, limit=2, cursor=first["next_cursor"])
        assert messages(second) == [
            messages(logs(seeded))[3],
            messages(logs(seeded))[4],
        ]

    def test_get_by_id(self, seeded: Dashboard) -> None:
        item = logs(seeded, event="payment_failed")["items"][0]  # type: ignore[index]
        response = seeded.client.get(f"/flare/api/logs/{item['id']}")
        assert response.status_code == 200
        assert response.json() == item

    @pytest.mark.parametrize("entry_id", ["999999", "abc", "1-0-0", "%00", "a.b:c"])
    def test_get_unknown_is_404(self, seeded: Dashboard, entry_id: str) -> None:
        response = seeded.client.get(f"/flare/api/logs/{entry_id}")
        assert response.status_code == 404
        assert "no entry" in response.json()["detail"]


class TestStats:
    def test_counts(self, seeded: Dashboard) -> None:
        stats = seeded.client.get("/flare/api/stats").json()
        assert stats["errors_24h"] == 4
        assert stats["warnings_24h"] == 1
        assert stats["total"] == 5
        assert stats["dropped"] == 0

    def test_latest_error(self, seeded: Dashboard) -> None:
        stats = seeded.client.get("/flare/api/stats").json()
        latest = datetime.fromisoformat(stats["latest_error_at"])
        assert datetime.now(UTC) - latest < timedelta(minutes=6)

    def test_dropped_counts_buffer(self, make_dashboard: MakeDashboard) -> None:
        dashboard = make_dashboard({"buffer_size": 1})
        for _ in range(3):
            dashboard.client.get("/no-such-page")
        assert dashboard.client.get("/flare/api/stats").json()["dropped"] == 2

    def test_timeline_default(self, seeded: Dashboard) -> None:
        buckets = seeded.client.get("/flare/api/timeline").json()
        assert len(buckets) == 24
        assert sum(bucket["errors"] for bucket in buckets) == 4
        assert sum(bucket["warnings"] for bucket in buckets) == 1

    def test_timeline_hours(self, seeded: Dashboard) -> None:
        buckets = seeded.client.get("/flare/api/timeline", params={"hours": 3}).json()
        assert len(buckets) == 3
        assert list(buckets[0]) == ["start", "errors", "warnings"]

    def test_health(self, seeded: Dashboard, backend: str) -> None:
        health = seeded.client.get("/flare/api/health").json()
        assert health["backend"] == backend
        assert health["worker_running"] is True


class TestGroups:
    def groups(self, dashboard: Dashboard, **params: object) -> list[dict[str, object]]:
        response = dashboard.client.get("/flare/api/groups", params=params)
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def set_status(self, dashboard: Dashboard, fingerprint: str, status: str) -> int:
        response = dashboard.client.post(
            f"/flare/api/groups/{fingerprint}/status",
            json={"status": status},
            headers=CSRF,
        )
        return response.status_code

    def test_list_with_sparklines(self, seeded: Dashboard) -> None:
        groups = self.groups(seeded)
        assert groups[0]["fingerprint"] == "fp-unhandled_exception"
        assert len(groups) == 3
        assert all(len(group["sparkline"]) == 24 for group in groups)  # type: ignore[arg-type]
        assert sum(groups[0]["sparkline"]) == 3  # type: ignore[arg-type]

    def test_sort_by_count(self, seeded: Dashboard) -> None:
        groups = self.groups(seeded, sort="count")
        assert [group["count"] for group in groups] == [3, 1, 1]

    def test_ignored_hidden_by_default(self, seeded: Dashboard) -> None:
        assert self.set_status(seeded, "fp-slow_query", "ignored") == 200
        default = [group["fingerprint"] for group in self.groups(seeded)]
        ignored = [
            group["fingerprint"] for group in self.groups(seeded, status="ignored")
        ]
        assert "fp-slow_query" not in default
        assert ignored == ["fp-slow_query"]

    def test_resolve_and_reopen(self, seeded: Dashboard) -> None:
        assert self.set_status(seeded, "fp-payment_failed", "resolved") == 200
        [resolved] = self.groups(seeded, status="resolved")
        assert resolved["fingerprint"] == "fp-payment_failed"
        assert self.set_status(seeded, "fp-payment_failed", "unresolved") == 200
        assert self.groups(seeded, status="resolved") == []

    def test_regression_after_resolve(self, seeded: Dashboard) -> None:
        self.set_status(seeded, "fp-payment_failed", "resolved")
        seeded.write([entry(0, event="payment_failed", message="declined again")])
        [group] = [
            g for g in self.groups(seeded) if g["fingerprint"] == "fp-payment_failed"
        ]
        assert group["status"] == "unresolved"
        assert group["regression"] is True

    def test_level_and_search(self, seeded: Dashboard) -> None:
        assert len(self.groups(seeded, level="WARNING")) == 1
        assert len(self.groups(seeded, q="division")) == 1

    def test_group_detail(self, seeded: Dashboard) -> None:
        response = seeded.client.get("/flare/api/groups/fp-unhandled_exception")
        assert response.status_code == 200
        body = response.json()
        assert body["group"]["count"] == 3
        assert len(body["group"]["sparkline"]) == 24
        assert [item["fingerprint"] for item in body["entries"]] == [
            "fp-unhandled_exception"
        ] * 3

    def test_group_detail_unknown(self, seeded: Dashboard) -> None:
        assert seeded.client.get("/flare/api/groups/nope").status_code == 404

    def test_status_unknown_group(self, seeded: Dashboard) -> None:
        assert self.set_status(seeded, "nope", "resolved") == 404

    @pytest.mark.parametrize(
        "body", [b"", b"not json", b"[]", b'{"status": 1}', b'{"status": "deleted"}']
    )
    def test_status_bad_body(self, seeded: Dashboard, body: bytes) -> None:
        response = seeded.client.post(
            "/flare/api/groups/fp-slow_query/status",
            content=body,
            headers={**CSRF, "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["parameter"] == "status"

    def test_status_body_too_large(self, seeded: Dashboard) -> None:
        response = seeded.client.post(
            "/flare/api/groups/fp-slow_query/status",
            content=b'{"status": "resolved", "pad": "' + b"x" * 5000 + b'"}',
            headers=CSRF,
        )
        assert response.status_code == 422


class TestBadParameters:
    @pytest.mark.parametrize(
        ("path", "params", "parameter"),
        [
            ("logs", {"limit": "-1"}, "limit"),
            ("logs", {"limit": "0"}, "limit"),
            ("logs", {"limit": str(10**9)}, "limit"),
            ("logs", {"limit": "ten"}, "limit"),
            ("logs", {"level": "FATAL"}, "level"),
            ("logs", {"status": "abc"}, "status"),
            ("logs", {"status": "99"}, "status"),
            ("logs", {"status": "600"}, "status"),
            ("logs", {"since": "yesterday"}, "since"),
            ("logs", {"until": "2026-13-45"}, "until"),
            ("logs", {"since": "9999-12-31T23:59:59-23:59"}, "since"),
            ("logs", {"until": "0001-01-01T00:00:00+23:59"}, "until"),
            ("logs", {"limit": "1_0"}, "limit"),
            ("logs", {"limit": "\uff11\uff10"}, "limit"),
            (
                "logs",
                {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
                "until",
            ),
            ("logs", {"cursor": "!!not-a-cursor!!"}, "cursor"),
            ("logs", {"cursor": "eyJ4IjoxfQ"}, "cursor"),  # {"x":1}
            ("logs", {"cursor": "eyJpZCI6ImFiYyJ9"}, "cursor"),  # {"id":"abc"}
            ("logs", {"q": "x" * 501}, "q"),
            ("timeline", {"hours": "0"}, "hours"),
            ("timeline", {"hours": str(10**6)}, "hours"),
            ("timeline", {"hours": "1.5"}, "hours"),
            ("groups", {"sort": "title"}, "sort"),
            ("groups", {"status": "deleted"}, "status"),
            ("groups", {"level": "INFO"}, "level"),
            ("groups", {"limit": "501"}, "limit"),
            ("groups", {"cursor": "%%%"}, "cursor"),
            ("groups", {"cursor": "eyJ2IjoiYSIsImYiOjF9"}, "cursor"),  # {"v":"a","f":1}
        ],
    )
    def test_rejected_with_422(
        self, seeded: Dashboard, path: str, params: dict[str, str], parameter: str
    ) -> None:
        response = seeded.client.get(f"/flare/api/{path}", params=params)
        assert response.status_code == 422
        assert response.json()["parameter"] == parameter
        assert parameter in response.json()["detail"]

    @pytest.mark.parametrize(
        "text",
        [
            '"',
            "'",
            "%",
            "_",
            "\\",
            "*",
            "' OR 1=1 --",
            '"unterminated',
            "NEAR(a b)",
            "a AND",
            "-x",
            "^",
            "(",
            "{col}:x",
            "é漢字",
            "\x00",
            "<script>alert(1)</script>",
        ],
    )
    def test_hostile_search_is_plain_text(self, seeded: Dashboard, text: str) -> None:
        logs_response = seeded.client.get("/flare/api/logs", params={"q": text})
        groups_response = seeded.client.get("/flare/api/groups", params={"q": text})
        assert logs_response.status_code == 200
        assert groups_response.status_code == 200
        assert logs_response.json()["items"] == []


def test_empty_storage(make_dashboard: MakeDashboard) -> None:
    dashboard = make_dashboard()
    assert dashboard.client.get("/flare/api/logs").json() == {
        "items": [],
        "next_cursor": None,
    }
    assert dashboard.client.get("/flare/api/groups").json() == {
        "items": [],
        "next_cursor": None,
    }
    assert dashboard.client.get("/flare/api/stats").json()["latest_error_at"] is None
