"""Where minflow gets its workers from (toy versions: they only describe themselves)."""

from __future__ import annotations

from attrs import define


@define
class LocalProvider:
    """Workers on this machine."""

    nodes_per_block: int = 1
    init_blocks: int = 1


@define
class SlurmProvider:
    """Workers from a Slurm cluster (never contacted in this toy)."""

    partition: str = "debug"
    nodes_per_block: int = 1
    max_blocks: int = 1

    def usage_information(self) -> dict[str, int]:
        """Counts only: the partition name could identify a site, so it is not reported."""
        return {"nodes_per_block": self.nodes_per_block, "max_blocks": self.max_blocks}
