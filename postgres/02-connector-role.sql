-- Least privilege for Debezium: a role that may log in and replicate, and read the MNIST tables only.
-- Its password is set apart (ALTER ROLE by the runner, or 03-connector-password.sh in docker compose),
-- from DEBEZIUM_PGPASSWORD, so no secret lives in SQL files.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'debezium') THEN
        CREATE ROLE debezium WITH LOGIN REPLICATION;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO debezium;
GRANT SELECT ON public.mnist_train, public.mnist_test TO debezium;

-- The publication is created here by the owner, because FOR TABLE needs ownership and FOR ALL TABLES needs a
-- superuser; the connector runs with publication.autocreate.mode=disabled.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'mnist_publication') THEN
        CREATE PUBLICATION mnist_publication FOR TABLE public.mnist_train, public.mnist_test;
    END IF;
END
$$;
