"""Fill a PostgreSQL collector database fast with COPY, for the 10-million-run benchmarks.

    python bench/pg_copy_fill.py --db "postgresql://postgres@127.0.0.1/test?options=-csearch_path%3Dbig" \\
        --runs 10000000 --products 60

``datagen.py`` goes through ``write_batch``, the writer's own path (about 5,000-13,000 runs/s
into PostgreSQL here, so 10 million runs take most of an hour). This loader makes the same
runs (``datagen.batches``, merged by the store's own ``merge_batch``) and streams them with
``COPY`` into ``runs`` and ``correlators``, with the secondary indexes and the foreign-key
triggers off during the load (rebuilt after); then the rollups are computed from the runs by
the store's ``rebuild_rollups``. The database ends up as ingest would have left it; only the
way there is a bulk load. Needs a superuser (to turn the triggers off), as on the test server.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import datagen  # noqa: E402
import psycopg  # noqa: E402

from telemetry_sdk.collector import open_store  # noqa: E402
from telemetry_sdk.collector._run_merge import Held, merge_batch  # noqa: E402

_COLUMNS = (
    "corr, product, received, version, python_v, platform, level, project, components, "
    'close_components, start, "end", execution_time, app_count, app_fails, has_start, '
    "has_close, day"
)
_INDEXES = ("runs_by_day", "runs_by_product_day")


def fill(url: str, runs: int, products: int, seed: int) -> dict[str, float]:
    open_store(url).close()  # the schema, as the collector makes it
    began = time.perf_counter()
    sets: dict[str, int] = {}
    made = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for index in _INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {index}")
        conn.execute("ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_corr_product_key")
        conn.execute("ALTER TABLE runs DISABLE TRIGGER ALL")

        def set_id(text: str | None) -> int | None:
            if text is None:
                return None
            found = sets.get(text)
            if found is None:
                row = conn.execute(
                    "INSERT INTO component_sets (json) VALUES (%s) ON CONFLICT (json) "
                    "DO UPDATE SET json = excluded.json RETURNING id",
                    (text,),
                ).fetchone()
                assert row is not None
                found = sets[text] = int(row[0])
            return found

        next_report = began + 30
        try:
            for chunk in datagen.batches(runs, 50_000, seed, int(time.time()), products):
                plan = merge_batch(chunk, Held())
                # Component ids first: no other statement may run while a COPY is open.
                rows = [
                    (
                        run.key, r.product, r.received, r.version, r.python_v, r.platform,
                        r.level, r.project, set_id(r.components), set_id(r.close_components),
                        r.start, r.end, r.execution_time, r.app_count, r.app_fails,
                        r.has_start, r.has_close, r.day,
                    )
                    for run in plan.inserts
                    for r in (run.new,)
                ]  # fmt: skip
                with conn.cursor() as cursor:
                    with cursor.copy(f"COPY runs ({_COLUMNS}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    with cursor.copy("COPY correlators (corr) FROM STDIN") as copy:
                        for key in {run.key for run in plan.inserts}:
                            copy.write_row((key,))
                made += len(plan.inserts)
                if time.perf_counter() >= next_report:
                    rate = made / (time.perf_counter() - began)
                    print(f"  {made:,} runs ({rate:,.0f} runs/s)", file=sys.stderr, flush=True)
                    next_report += 30
        finally:
            print("  rebuilding indexes ...", file=sys.stderr, flush=True)
            conn.execute("ALTER TABLE runs ENABLE TRIGGER ALL")
            conn.execute(
                "ALTER TABLE runs ADD CONSTRAINT runs_corr_product_key UNIQUE (corr, product)"
            )
            conn.execute("CREATE INDEX runs_by_day ON runs (day)")
            conn.execute("CREATE INDEX runs_by_product_day ON runs (product, day)")
    loaded = time.perf_counter() - began
    print("  computing the rollups ...", file=sys.stderr, flush=True)
    store = open_store(url)
    try:
        store.rebuild_rollups()
    finally:
        store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE runs, correlators, rollup, component_sets")
    return {"runs": made, "load_s": loaded, "total_s": time.perf_counter() - began}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="postgresql://... (an empty schema)")
    parser.add_argument("--runs", type=int, default=10_000_000)
    parser.add_argument("--products", type=int, default=60)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    result = fill(args.db, args.runs, args.products, args.seed)
    print(
        f"{result['runs']:,} runs: COPY and indexes {result['load_s']:,.0f} s, with rollups "
        f"{result['total_s']:,.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
