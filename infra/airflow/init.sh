#!/usr/bin/env bash
# One-shot set-up of the compose stack (service airflow-init, run as root): the metadata DB, the DVC
# pool, the password file of the simple auth manager (admin, reviewer), an empty TF Serving models.config, the
# gateway's certificate, and ownership of the shared volumes for the Airflow user.
set -euo pipefail

: "${AIRFLOW_UID:?AIRFLOW_UID is not set}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set; see .env.example}"
: "${AIRFLOW_REVIEWER_PASSWORD:?AIRFLOW_REVIEWER_PASSWORD is not set; see .env.example}"
passwords="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
models_config="${MURA_MODEL_BASE_PATH:?}/models.config"

mkdir -p "$(dirname "$passwords")" "$MURA_MODEL_BASE_PATH" "$MURA_HOME" "${AIRFLOW__LOGGING__BASE_LOG_FOLDER:?}"
airflow db migrate
airflow pools set mura_dvc 1 "DVC tasks one at a time: the repository lock gives up after a few seconds"

python - "$passwords" <<'PY'
import json, os, sys
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    json.dump(
        {
            os.environ.get("AIRFLOW_ADMIN_USER", "admin"): os.environ["AIRFLOW_ADMIN_PASSWORD"],
            "reviewer": os.environ["AIRFLOW_REVIEWER_PASSWORD"],  # answers mura_retrain's approvals
        },
        handle,
    )
PY
chmod 600 "$passwords"

# TF Serving starts on this file and polls it; the deploy task (the reconciler) rewrites it.
if [ ! -f "$models_config" ]; then
  printf 'model_config_list {\n}\n' > "$models_config"
fi

# The inference gateway's TLS certificate, signed once by a local CA (ca.crt, for clients; its key is
# discarded); replace gateway.crt/.key and ca.crt with your CA's.
python -m serving.gateway certificate /opt/mura/gateway-certs localhost 127.0.0.1 gateway

chown -R "${AIRFLOW_UID}:0" "$(dirname "$passwords")" "$MURA_MODEL_BASE_PATH" "$MURA_HOME" \
  "$AIRFLOW__LOGGING__BASE_LOG_FOLDER"
echo "airflow-init: database migrated, pool mura_dvc set, ${models_config} ready"
