-- The data contract (docs/design.md, Data contract): one row an image, 28x28 = 784 bytes row-major, 0 = background.
-- Run by the table owner (PGUSER); idempotent, so `python -m stack up` and the loader can run it every time.
CREATE TABLE IF NOT EXISTS public.mnist_train (
    id     SERIAL PRIMARY KEY,
    label  SMALLINT,
    pixels BYTEA
);

CREATE TABLE IF NOT EXISTS public.mnist_test (
    id     SERIAL PRIMARY KEY,
    label  SMALLINT,
    pixels BYTEA
);

-- A DELETE reaches the topic as the row's last version (label and pixels, marked __op=d), so a reader can decode
-- it like any row and knows which version it removes: the WAL must carry the whole old row, not only its key.
-- Altered only when not yet FULL: ALTER TABLE takes an exclusive lock, and this file runs on every load.
DO $$
BEGIN
    IF (SELECT relreplident FROM pg_class WHERE oid = 'public.mnist_train'::regclass) <> 'f' THEN
        ALTER TABLE public.mnist_train REPLICA IDENTITY FULL;
    END IF;
    IF (SELECT relreplident FROM pg_class WHERE oid = 'public.mnist_test'::regclass) <> 'f' THEN
        ALTER TABLE public.mnist_test REPLICA IDENTITY FULL;
    END IF;
END
$$;

-- Nothing lost on a connector restart. COPY writes a page of rows (about 9 images) under one WAL position (LSN),
-- and Debezium resumes after a restart at the LSN of the last change it sent: it then skips the rest of that page
-- (debezium/dbz#1554, only partly fixed in 3.7.0). A BEFORE INSERT row trigger makes PostgreSQL insert COPY rows
-- one at a time, so every row has its own LSN and the resume position is exact. Keep it on your own tables.
CREATE OR REPLACE FUNCTION public.one_lsn_per_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER one_lsn_per_row BEFORE INSERT ON public.mnist_train
    FOR EACH ROW EXECUTE FUNCTION public.one_lsn_per_row();

CREATE OR REPLACE TRIGGER one_lsn_per_row BEFORE INSERT ON public.mnist_test
    FOR EACH ROW EXECUTE FUNCTION public.one_lsn_per_row();
