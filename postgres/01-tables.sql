-- The data contract (DESIGN.md): one row an image, 28x28 = 784 bytes row-major, 0 = background.
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
