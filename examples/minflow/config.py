"""minflow's configuration: its own settings plus the two usage-tracking settings."""

from __future__ import annotations

from attrs import field, frozen

import telemetry_sdk

from .executors import Executor, ThreadPoolExecutor

#: Declared once by the host library: who it is and where its messages go by default.
PRODUCT = telemetry_sdk.Product(
    name="minflow",
    version="1.4.0",
    endpoint="udp://tracking.minflow.example.org:50077",
)


def _default_executors() -> list[Executor]:
    return [ThreadPoolExecutor()]


@frozen
class Config:
    """What a minflow user writes. Usage tracking is off unless ``usage_tracking`` says so."""

    executors: list[Executor] = field(factory=_default_executors)
    retries: int = 0
    #: 0 off (the default), 1 versions, 2 plus component names, 3 plus app counts and runtime.
    usage_tracking: int = 0
    #: Puts the run on the leaderboard under this name (optional).
    project_name: str | None = None
    #: Where messages go, for sites that run their own collector (optional; the
    #: ``MINFLOW_USAGE_TRACKING_ENDPOINT`` environment variable beats it).
    usage_endpoint: str | None = None

    def usage_information(self) -> dict[str, int | bool]:
        """Safe details minflow reports about its configuration at level 2 and up."""
        return {"executors_len": len(self.executors), "retries": self.retries}

    def tracking_config(self) -> telemetry_sdk.Config:
        """The telemetry-sdk configuration: validated here, so mistakes surface at once."""
        return telemetry_sdk.Config(
            usage_tracking=self.usage_tracking,
            project_name=self.project_name,
            # Environment() adds coarse facts (CPU bucket, scheduler, container, CI, cloud)
            # at level 2 and up; minflow's own configuration describes itself.
            components=[self, telemetry_sdk.Environment()],
            endpoint=self.usage_endpoint,
        )
