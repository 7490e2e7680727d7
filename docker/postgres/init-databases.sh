#!/bin/bash
# Run once by the postgres image, on the first start with an empty data volume
# (/docker-entrypoint-initdb.d/): one server, a role and a database for Airflow's metadata,
# and a role with two databases for MLflow (tracking + registry store, basic-auth users).
# Passwords come from the environment (docker/.env through docker-compose.yaml) and reach
# SQL as psql variables, so no quoting can break out of the statement.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB:-postgres}" \
    -v airflow_password="${AIRFLOW_DB_PASSWORD}" -v mlflow_password="${MLFLOW_DB_PASSWORD}" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
SQL
