"""The OpenAPI document at /openapi.json, and the live API fuzzed against it with schemathesis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from _collector_support import CollectorProcess, close_message, datagram, start_message
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.failures import FailureGroup

pytestmark = pytest.mark.slow

TOKEN = "fuzzing-token-0123456789"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """A collector holding a few runs, with an admin token."""
    directory = tmp_path_factory.mktemp("openapi")
    token = directory / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    process = CollectorProcess(directory, "--admin-token-file", str(token)).start()
    for level in (1, 3):
        message = start_message(tracking_level=level, project_name=f"fuzz-{level}")
        process.send(datagram(message), datagram(close_message(message.correlator)))
    process.wait_processed(4)
    yield process
    process.kill()


def base_url(collector: CollectorProcess) -> str:
    return f"http://{collector.http[0]}:{collector.http[1]}"


class TestDocument:
    def test_every_api_route_is_described(self, collector: CollectorProcess) -> None:
        """/openapi.json is OpenAPI 3 and lists every documented route and method."""
        document = collector.get("/openapi.json").json()
        assert document["openapi"].startswith("3.")
        methods = {path: set(item) for path, item in document["paths"].items()}
        assert methods == {
            "/api/products": {"get"},
            "/api/leaderboard": {"get"},
            "/api/stats": {"get"},
            "/api/adoption/versions": {"get"},
            "/api/adoption/python": {"get"},
            "/api/components": {"get"},
            "/api/upgrades": {"get"},
            "/api/projects": {"get"},
            "/api/health": {"get"},
            "/api/never-closed": {"get"},
            "/api/runs/{correlator}": {"get", "delete"},
            "/healthz": {"get"},
            "/metrics": {"get"},
        }
        leaderboard = document["paths"]["/api/leaderboard"]["get"]
        assert {p["name"] for p in leaderboard["parameters"]} == {
            "product", "limit", "since", "until", "ci",
        }  # fmt: skip
        # Every view that takes a period takes the CI switch too.
        for path, item in document["paths"].items():
            names = {p["name"] for p in item.get("get", {}).get("parameters", [])}
            if "since" in names:
                assert "ci" in names, path


class TestFuzz:
    def test_live_api_conforms_to_its_document(
        self, collector: CollectorProcess, tmp_path: Path
    ) -> None:
        """Generated requests to every operation: no 5xx, every response matches the document."""
        schema = schemathesis.openapi.from_url(base_url(collector) + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 14
        failures: list[str] = []
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=25,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                # A date can match the documented pattern and still not exist (02-30), or
                # since can fall after until: the API answers those with a 400 (tested in
                # test_http_periods.py), so valid-looking dates may be refused.
                query = case.query or {}
                excluded = [positive_data_acceptance] if {"since", "until"} & set(query) else []
                case.call_and_validate(base_url=base_url(collector), excluded_checks=excluded)

            try:
                check()
            except (FailureGroup, AssertionError) as exc:
                failures.append(f"{operation.label}: {exc}")
        assert failures == []
        assert "Traceback" not in collector.log()
