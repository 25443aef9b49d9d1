"""The public surface: what ``telemetry_sdk`` exports is sorted and real."""

from __future__ import annotations

import telemetry_sdk
import telemetry_sdk.testing


class TestExportedMembers:
    def test_all_is_sorted(self):
        """``__all__`` is kept in sorted order, so additions are easy to review."""
        assert telemetry_sdk.__all__ == sorted(telemetry_sdk.__all__)

    def test_every_exported_name_exists(self):
        """Every name in ``__all__`` can be imported from the package."""
        for name in telemetry_sdk.__all__:
            assert getattr(telemetry_sdk, name) is not None, name

    def test_usage_tracker_is_public(self):
        """The tracker users embed is part of the public surface."""
        assert "UsageTracker" in telemetry_sdk.__all__

    def test_testing_helpers_are_exported(self):
        """``telemetry_sdk.testing`` lists its helpers and they exist."""
        assert telemetry_sdk.testing.__all__ == sorted(telemetry_sdk.testing.__all__)
        for name in telemetry_sdk.testing.__all__:
            assert hasattr(telemetry_sdk.testing, name)
