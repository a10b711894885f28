#!/bin/bash
# Runs once, when the database volume is first initialised
# (/docker-entrypoint-initdb.d): the extensions the SEL relies on.
# pg_stat_statements also needs shared_preload_libraries (set in the compose file).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
