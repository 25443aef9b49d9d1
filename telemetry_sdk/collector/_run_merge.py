"""The merge of a run's messages: pure functions over ``RunRow``, shared by every engine.

A run is one row keyed by (correlator, product). A start inserts or fills it, a close fills
it, in any order; a repeated message changes nothing. While the run is open, a progress
message (a heartbeat) replaces its app counts and run time if it is the latest one (the
highest heartbeat number); after the close nothing does. Every message moves the run's
``last_received``, from which ``_run_status`` tells open runs from never-closed ones. Whether
a run came from CI is what its ``telemetry_sdk.Environment`` component says. A Parsl close
names no product: it is joined to its run(s) by correlator, or held (``HeldClose``) until its
start arrives. A deleted run's correlator is remembered, and its late messages are dropped.

An engine loads what it holds about a batch's correlators (``Held``), hands it with the
records to ``merge_batch``, and writes the ``MergePlan`` it gets back, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from attrs import define, field, frozen

from ._ingest import Record

__all__ = [
    "DAY",
    "ROW_COLUMNS",
    "Held",
    "HeldClose",
    "KeyedRun",
    "MergePlan",
    "RunRow",
    "StoredRun",
    "correlator_key",
    "correlator_text",
    "merge_batch",
]

#: Seconds in a day: rollups count runs per day of first receipt (UTC).
DAY = 86400


def correlator_key(correlator: str) -> bytes:
    """The 16-byte key a (validated, lower-case) correlator is stored under."""
    return bytes.fromhex(correlator.replace("-", ""))


def correlator_text(key: bytes) -> str:
    """The correlator a 16-byte key stands for, as the SDK sends it."""
    h = key.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@define(slots=True)
class RunRow:
    """Everything held about one run of one product (component lists as JSON text)."""

    product: str
    #: When the collector first received a message of this run (epoch seconds).
    received: int
    version: str | None = None
    python_v: str | None = None
    platform: str | None = None
    level: int | None = None
    project: str | None = None
    components: str | None = None
    close_components: str | None = None
    start: int | None = None
    end: int | None = None
    execution_time: float | None = None
    app_count: int | None = None
    app_fails: int | None = None
    has_start: bool = False
    has_close: bool = False
    #: Whether the run came from CI (its Environment component); None when it did not say.
    ci: bool | None = None
    #: When the collector last received a message of this run (epoch seconds); None for
    #: runs stored before the collector kept it.
    last_received: int | None = None
    #: The number of the latest heartbeat received (None: none yet).
    heartbeats: int | None = None

    @property
    def day(self) -> int:
        """The day (since 1970-01-01, UTC) the run was first received."""
        return self.received // DAY

    def heard(self, received: int) -> None:
        """A message of the run was received at ``received``."""
        if self.last_received is None or received > self.last_received:
            self.last_received = received

    def copy(self) -> RunRow:
        """An independent copy (merging changes rows in place)."""
        return attrs.evolve(self)

    def stored(self, set_id: Callable[[str | None], int | None]) -> tuple[Any, ...]:
        """The values an engine stores: ``ROW_COLUMNS`` in order, then ``day``; each
        component list (JSON text) replaced by ``set_id(text)``, its id in the store."""
        return (
            self.product,
            self.received,
            self.version,
            self.python_v,
            self.platform,
            self.level,
            self.project,
            set_id(self.components),
            set_id(self.close_components),
            self.start,
            self.end,
            self.execution_time,
            self.app_count,
            self.app_fails,
            self.has_start,
            self.has_close,
            self.ci,
            self.last_received,
            self.heartbeats,
            self.day,
        )


#: The fields of ``RunRow`` in order: the run columns both engines store (then ``day``).
ROW_COLUMNS: tuple[str, ...] = tuple(a.name for a in attrs.fields(RunRow))


@frozen
class HeldClose:
    """A Parsl close waiting for its start (it names no product to key a run by)."""

    project: str | None
    close_components: str | None
    end: int | None
    execution_time: float | None
    app_count: int | None
    app_fails: int | None
    received: int

    @property
    def day(self) -> int:
        """The day (since 1970-01-01, UTC) the close was received."""
        return self.received // DAY

    @classmethod
    def from_record(cls, record: Record) -> HeldClose:
        """The close part of a record."""
        return cls(
            project=record.project,
            close_components=record.components,
            end=record.end,
            execution_time=record.execution_time,
            app_count=record.app_count,
            app_fails=record.app_fails,
            received=record.received,
        )


@frozen
class KeyedRun:
    """A stored run with its correlator's key (as exports read them)."""

    key: bytes
    row: RunRow


@define
class StoredRun:
    """A run touched by a batch: its engine's row id (``None`` if new), before and after."""

    key: bytes
    id: int | None
    old: RunRow | None
    new: RunRow


@frozen
class Held:
    """What a store holds about a batch's correlators before the batch."""

    #: Correlators of deleted runs.
    deleted: frozenset[bytes] = frozenset()
    #: Existing runs (``old`` is a copy of ``new``).
    runs: Sequence[StoredRun] = ()
    #: Held Parsl closes by correlator.
    held: dict[bytes, HeldClose] = field(factory=dict)


@define
class MergePlan:
    """What to write for a batch."""

    #: Runs to insert (``id`` and ``old`` are ``None``).
    inserts: list[StoredRun] = field(factory=list)
    #: Runs to update (their row changed).
    updates: list[StoredRun] = field(factory=list)
    #: Parsl closes to hold, by correlator (none was held for it before).
    hold: dict[bytes, HeldClose] = field(factory=dict)
    #: Held closes joined to their start: delete them.
    joined: set[bytes] = field(factory=set)
    #: Messages dropped because their run was deleted.
    suppressed: int = 0

    @property
    def changed(self) -> int:
        """Runs created or changed."""
        return len(self.inserts) + len(self.updates)


def fill_start(row: RunRow, record: Record) -> None:
    """Fill a run from its start message."""
    row.version = record.version
    row.python_v = record.python_v
    row.platform = record.platform
    row.level = record.level
    row.components = record.components
    row.start = record.start
    row.has_start = True
    if record.project is not None:
        row.project = record.project
    if record.ci is not None:
        row.ci = record.ci
    row.received = min(row.received, record.received)


def fill_progress(row: RunRow, record: Record) -> None:
    """Keep an open run's latest counts and run time from a progress message.

    Only a heartbeat numbered above the latest one counts: a late or repeated heartbeat
    changes nothing but ``last_received``, and after the close the counts stay the close's.
    """
    beat = record.heartbeat or 0
    if row.heartbeats is not None and beat <= row.heartbeats:
        return
    # The same whatever the order: the highest number, the first receipt, what was missing.
    row.heartbeats = beat
    row.received = min(row.received, record.received)
    if row.project is None:
        row.project = record.project
    if not row.has_start:
        if row.version is None:
            row.version = record.version
        if row.level is None:
            row.level = record.level
    if not row.has_close:  # the close's counts are final
        row.execution_time = record.execution_time
        row.app_count = record.app_count
        row.app_fails = record.app_fails


def fill_close(
    row: RunRow, close: HeldClose, version: str | None = None, level: int | None = None
) -> None:
    """Fill a run from a close; ``version`` and ``level`` if the close sent them."""
    row.close_components = close.close_components
    row.end = close.end
    row.execution_time = close.execution_time
    row.app_count = close.app_count
    row.app_fails = close.app_fails
    row.has_close = True
    if row.project is None:
        row.project = close.project
    row.received = min(row.received, close.received)
    if not row.has_start:
        if row.version is None:
            row.version = version
        if row.level is None:
            row.level = level


def merge_batch(records: Sequence[Record], held: Held) -> MergePlan:
    """Apply ``records`` in order to what is ``held``: what to write. Pure."""
    runs: dict[tuple[bytes, str], StoredRun] = {}
    by_corr: dict[bytes, list[StoredRun]] = {}
    for run in held.runs:
        runs[(run.key, run.new.product)] = run
        by_corr.setdefault(run.key, []).append(run)
    plan = MergePlan()
    hold = plan.hold
    deleted = held.deleted
    for record in records:
        key = correlator_key(record.correlator)
        if key in deleted:
            plan.suppressed += 1
            continue
        product = record.product
        if product is None:  # a Parsl close: join by correlator
            targets = by_corr.get(key)
            if targets:
                close = HeldClose.from_record(record)
                for run in targets:
                    run.new.heard(record.received)
                    if not run.new.has_close:
                        fill_close(run.new, close)
            elif key not in held.held and key not in hold:
                hold[key] = HeldClose.from_record(record)
            continue
        found = runs.get((key, product))
        if found is None:
            found = runs[(key, product)] = StoredRun(
                key, None, None, RunRow(product=product, received=record.received)
            )
            by_corr.setdefault(key, []).append(found)
        current = found.new
        current.heard(record.received)
        if record.kind == "progress":
            fill_progress(current, record)
        elif record.kind == "start":
            if current.has_start:
                continue
            fill_start(current, record)
            waiting = hold.pop(key, None)
            if waiting is None and key in held.held and key not in plan.joined:
                waiting = held.held[key]
                plan.joined.add(key)
            if waiting is not None and not current.has_close:
                current.heard(waiting.received)
                fill_close(current, waiting)
        else:
            if current.ci is None and record.ci is not None:
                current.ci = record.ci
            if not current.has_close:
                fill_close(current, HeldClose.from_record(record), record.version, record.level)
    for run in runs.values():
        if run.old is None:
            plan.inserts.append(run)
        elif run.old != run.new:
            plan.updates.append(run)
    return plan
