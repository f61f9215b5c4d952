#!/bin/sh
# One-shot (service minio-init): the buckets of the DVC remote `s3` (.dvc/config) and of MLflow's artifacts.
set -eu
mc alias set mura "http://minio:9000" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
for bucket in "${DVC_BUCKET:-mura-dvc}" "${MLFLOW_BUCKET:-mura-mlflow}"; do
  mc mb --ignore-existing "mura/${bucket}"
done
echo "minio-init: buckets ready"
