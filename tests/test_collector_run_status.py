"""The run status rule: open, closed, or never closed after three silent intervals."""

from __future__ import annotations

import pytest

from telemetry_sdk.collector._run_status import SILENT_INTERVALS, heartbeat_interval, run_status

NOW = 1_795_305_800
HOUR = 3600


def status(**changes: object) -> str | None:
    fields: dict[str, object] = {
        "level": 3,
        "has_close": False,
        "last_received": NOW,
        "heartbeats": None,
        "execution_time": None,
        "now": NOW,
    }
    fields.update(changes)
    return run_status(**fields)  # type: ignore[arg-type]


class TestRunStatus:
    def test_a_closed_run_is_closed_however_old(self):
        """A run whose close arrived is closed, whenever it was last heard from."""
        assert status(has_close=True, last_received=NOW - 10**8) == "closed"

    @pytest.mark.parametrize("level", [1, 2, None])
    def test_below_level_3_there_is_no_status(self, level):
        """Levels 1 and 2 send no close and no heartbeat: nothing to follow."""
        assert status(level=level, last_received=NOW - 10**8) is None

    def test_before_its_first_heartbeat_the_default_hour_applies(self):
        """A start-only run is open for three hours of silence, never closed after."""
        assert status(last_received=NOW - SILENT_INTERVALS * HOUR) == "open"
        assert status(last_received=NOW - SILENT_INTERVALS * HOUR - 1) == "never_closed"

    def test_the_interval_is_read_from_the_latest_heartbeat(self):
        """Heartbeat 4 after 240 s means a 60 s interval: silent 181 s is never closed."""
        assert heartbeat_interval(4, 240.0) == 60.0
        assert status(heartbeats=4, execution_time=240.0, last_received=NOW - 180) == "open"
        assert status(heartbeats=4, execution_time=240.0, last_received=NOW - 181) == "never_closed"

    def test_a_late_close_turns_a_never_closed_run_closed(self):
        """Silence marks a run never closed only until its close arrives."""
        silent = {"last_received": NOW - 10 * HOUR}
        assert status(**silent) == "never_closed"
        assert status(**silent, has_close=True) == "closed"

    @pytest.mark.parametrize(("beats", "time"), [(0, 10.0), (None, None), (3, 0.0), (2, 1.0)])
    def test_odd_heartbeat_figures_give_a_sane_interval(self, beats, time):
        """No heartbeat or no time falls back to an hour; the interval is never below 1 s."""
        interval = heartbeat_interval(beats, time)
        assert interval >= 1.0
        if not beats or not time:
            assert interval == HOUR
