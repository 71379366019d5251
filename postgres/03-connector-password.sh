#!/usr/bin/env bash
# docker compose only (the postgres image runs this after 01/02-*.sql): the connector role's password from
# DEBEZIUM_PGPASSWORD, and replication connections for that role from the compose network.
# The native stack does the same in stack/postgres.py.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="${DEBEZIUM_PGPASSWORD:-debezium}" <<'EOSQL'
ALTER ROLE debezium PASSWORD :'password';
EOSQL
echo "host replication debezium all scram-sha-256" >> "$PGDATA/pg_hba.conf"
