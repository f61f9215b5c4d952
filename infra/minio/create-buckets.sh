#!/bin/sh
# One-shot (service minio-init): the buckets of the DVC remote `s3` (.dvc/config) and of MLflow's
# artifacts, and one MinIO user per bucket, so no service but MinIO and this job holds the root keys.
set -eu
mc alias set mura "http://minio:9000" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
scoped_user() {  # user password bucket: list, read and write that bucket only
  cat > "/tmp/$3.json" <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": ["arn:aws:s3:::$3"]},
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": ["arn:aws:s3:::$3/*"]}
]}
POLICY
  mc mb --ignore-existing "mura/$3"
  mc admin policy create mura "$3-readwrite" "/tmp/$3.json"
  mc admin user add mura "$1" "$2" >/dev/null
  mc admin policy attach mura "$3-readwrite" --user "$1" >/dev/null 2>&1 || true  # attached before
}
scoped_user "${MINIO_DVC_USER:-mura-dvc}" "$MINIO_DVC_PASSWORD" "${DVC_BUCKET:-mura-dvc}"
scoped_user "${MINIO_MLFLOW_USER:-mura-mlflow}" "$MINIO_MLFLOW_PASSWORD" "${MLFLOW_BUCKET:-mura-mlflow}"
echo "minio-init: buckets and their users ready"
