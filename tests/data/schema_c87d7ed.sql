-- The collector's SQLite schema as of commit c87d7ed (before issue 8): schema version 1.
-- Kept as test data, to build the old databases the upgrade tests open.
-- Component lists repeat from run to run: each distinct list (JSON text) is kept once.
CREATE TABLE IF NOT EXISTS component_sets (id INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    corr BLOB NOT NULL,
    product TEXT NOT NULL,
    version TEXT,
    python_v TEXT,
    platform TEXT,
    level INTEGER,
    project TEXT,
    components INTEGER REFERENCES component_sets (id),
    close_components INTEGER REFERENCES component_sets (id),
    start INTEGER,
    "end" INTEGER,
    execution_time REAL,
    app_count INTEGER,
    app_fails INTEGER,
    has_start INTEGER NOT NULL,
    has_close INTEGER NOT NULL,
    day INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_key ON runs (corr, product);
CREATE TABLE IF NOT EXISTS pending_closes (
    corr BLOB PRIMARY KEY,
    project TEXT,
    close_components INTEGER REFERENCES component_sets (id),
    "end" INTEGER,
    execution_time REAL,
    app_count INTEGER,
    app_fails INTEGER,
    day INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted_runs (corr BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup (
    kind TEXT NOT NULL,
    product TEXT NOT NULL,
    key TEXT NOT NULL,
    runs INTEGER NOT NULL,
    points INTEGER NOT NULL,
    x INTEGER NOT NULL,
    y INTEGER NOT NULL,
    PRIMARY KEY (kind, product, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_by_points ON rollup (kind, product, points DESC, runs DESC);
CREATE INDEX IF NOT EXISTS rollup_by_runs ON rollup (kind, product, runs DESC);
