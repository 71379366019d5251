#!/usr/bin/env bash
# docker compose only (the postgres image runs this after 04-predictions.sql): the JDBC sink role's password from
# PREDICTIONS_SINK_PGPASSWORD. The native stack does the same in stack/postgres.py. The image's pg_hba.conf lets
# the role log in over the compose network (no replication: the role has no REPLICATION attribute).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="${PREDICTIONS_SINK_PGPASSWORD:-predictions}" <<'EOSQL'
ALTER ROLE predictions_sink PASSWORD :'password';
EOSQL
