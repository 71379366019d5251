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

-- The connector's heartbeat writes one row here (heartbeat.action.query). PostgreSQL 15's pgoutput sends nothing
-- for transactions on tables outside the publication, so while only other tables change the connector would
-- learn no newer WAL position and mnist_slot would keep all their WAL; this row's change, in the publication but
-- not in table.include.list, moves the slot on and reaches no topic. The role's only write right.
CREATE TABLE IF NOT EXISTS public.debezium_heartbeat (
    id   SMALLINT PRIMARY KEY,
    beat TIMESTAMPTZ NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON public.debezium_heartbeat TO debezium;

-- The publication is created here by the owner, because FOR TABLE needs ownership and FOR ALL TABLES needs a
-- superuser; the connector runs with publication.autocreate.mode=disabled.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'mnist_publication') THEN
        CREATE PUBLICATION mnist_publication FOR TABLE public.mnist_train, public.mnist_test;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_publication_tables
                   WHERE pubname = 'mnist_publication' AND schemaname = 'public' AND tablename = 'debezium_heartbeat') THEN
        ALTER PUBLICATION mnist_publication ADD TABLE public.debezium_heartbeat;
    END IF;
END
$$;
