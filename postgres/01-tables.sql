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
