#!/usr/bin/env bash
# Runs once, on the first start of an empty postgres-data volume (docker-entrypoint-initdb.d).
# One PostgreSQL server, a database per hub: campus (district d1's regional hub, made by the
# image from POSTGRES_DB), campus_d2 (district d2's) and campus_central (the central hub's).
set -euo pipefail
for db in campus_d2 campus_central; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -c "CREATE DATABASE $db OWNER \"$POSTGRES_USER\""
done
