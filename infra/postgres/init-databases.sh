#!/usr/bin/env bash
# Runs once, on the first start of an empty data volume: one database each for Airflow and MLflow.
set -euo pipefail
for database in airflow mlflow; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE ${database} OWNER \"${POSTGRES_USER}\""
done
