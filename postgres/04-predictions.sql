-- The way back: predictions of the MNIST rows, one row per source row, keyed by the headers that
-- MnistToCsv and unwrap put on every record (mnist.table, mnist.id, __source_ts_ms). Written by Debezium's JDBC
-- sink connector as predictions_sink, in upsert mode (INSERT ... ON CONFLICT (source_table, id) DO UPDATE) with
-- schema.evolution=none: the table is made here, by its owner, and the sink may only fill it (and delete from it).
-- Run by the table owner (PGUSER); idempotent like 01/02. Not in mnist_publication: predictions are not captured.
CREATE TABLE IF NOT EXISTS public.mnist_predictions (
    source_table  TEXT,         -- the mnist.table header: mnist_train or mnist_test
    id            BIGINT,       -- the mnist.id header: the source row's id
    predicted     SMALLINT,     -- the predicted digit
    confidence    REAL,         -- the model's probability of that digit
    model_version INTEGER,
    committed_at  TIMESTAMPTZ,  -- the source row's commit time (the __source_ts_ms header)
    predicted_at  TIMESTAMPTZ,
    PRIMARY KEY (source_table, id)
);

-- Least privilege for the sink: it may log in (no REPLICATION) and upsert and delete predictions in this table,
-- nothing else.
-- The JDBC sink learns that the table exists, its columns and its key from JDBC metadata (pg_catalog, which every
-- role may read). Its PostgreSQL upsert, INSERT ... ON CONFLICT (source_table, id) DO UPDATE SET c = EXCLUDED.c,
-- needs SELECT besides INSERT and UPDATE: PostgreSQL checks SELECT on the conflict target's columns and on every
-- column read through EXCLUDED (measured on PostgreSQL 15: without it, "permission denied for table
-- mnist_predictions"). DELETE: a deleted source row's prediction goes too (the predictor writes a tombstone, the
-- sink runs with delete.enabled=true). No right on any other table.
-- Its password is set apart (ALTER ROLE by the runner), so no secret lives in SQL files.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'predictions_sink') THEN
        CREATE ROLE predictions_sink WITH LOGIN NOREPLICATION;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO predictions_sink;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.mnist_predictions TO predictions_sink;
