#!/usr/bin/env bash
# TF Serving's compose healthcheck: every model named in models.config answers AVAILABLE on its REST
# endpoint; with no model configured yet (a fresh stack), the REST API must answer HTTP at all.
set -euo pipefail
config=${MODELS_CONFIG:-/models/models.config}
port=${REST_PORT:-8501}
ask() {  # the status line and body of GET $1 (bash only: the image has no curl)
  exec 3<>"/dev/tcp/127.0.0.1/${port}"
  printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&3
  cat <&3
  exec 3<&-
}
models=$(grep -o 'name: *"[^"]*"' "$config" 2>/dev/null | sed 's/.*"\(.*\)"/\1/' || true)
if [ -z "$models" ]; then
  ask /v1/models/none | head -1 | grep -q '^HTTP/1\.[01] '
  exit
fi
for model in $models; do
  ask "/v1/models/${model}" | grep -q '"state": *"AVAILABLE"'
done
