#!/bin/sh
# Start the MLflow tracking server: runs and registry in Postgres, artifacts proxied by the
# server to S3 (clients never hold S3 credentials for them), basic auth in front.
# Everything comes from the environment (see docker/docker-compose.yaml):
#   MLFLOW_BACKEND_STORE_URI      postgresql+psycopg2://mlflow:<password>@postgres:5432/mlflow
#   MLFLOW_ARTIFACTS_DESTINATION  s3://<bucket>/mlflow (MLFLOW_S3_ENDPOINT_URL and the AWS_*
#                                 variables reach S3 or MinIO)
#   MLFLOW_AUTH_DATABASE_URI      postgresql+psycopg2://mlflow:<password>@postgres:5432/mlflow_auth
#                                 (name the driver: SQLAlchemy 2.1 takes psycopg 3, not in
#                                 the image, for a plain postgresql:// URI)
#   MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD, MLFLOW_FLASK_SERVER_SECRET_KEY
#   MLFLOW_SERVER_ALLOWED_HOSTS   Host headers accepted (the compose service name, localhost)
# Extra arguments are passed on to `mlflow server` (e.g. --workers 2).
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI, e.g. postgresql+psycopg2://mlflow:PASSWORD@postgres:5432/mlflow}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION, e.g. s3://retail/mlflow}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (the basic-auth app signs its CSRF tokens with it)}"

# The effective auth config: the shipped ini with database_uri from the environment. "%" is
# doubled because MLflow reads the file with configparser's interpolation.
export MLFLOW_AUTH_CONFIG_PATH="${MLFLOW_AUTH_CONFIG_PATH:-/tmp/mlflow/basic_auth.ini}"
python - <<'PY'
import configparser
import os
from pathlib import Path

config = configparser.ConfigParser(interpolation=None)
config.read("/opt/mlflow/basic_auth.ini")
uri = os.environ.get("MLFLOW_AUTH_DATABASE_URI")
if uri:
    config["mlflow"]["database_uri"] = uri.replace("%", "%%")
target = Path(os.environ["MLFLOW_AUTH_CONFIG_PATH"])
target.parent.mkdir(parents=True, exist_ok=True)
with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
    config.write(handle)
PY

exec mlflow server \
    --backend-store-uri "${MLFLOW_BACKEND_STORE_URI}" \
    --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION}" \
    --serve-artifacts \
    --app-name basic-auth \
    --host 0.0.0.0 \
    --port "${MLFLOW_PORT:-5000}" \
    "$@"
