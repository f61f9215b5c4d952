#!/usr/bin/env bash
# TF Serving's compose healthcheck: every model named in models.config answers AVAILABLE on its REST
# endpoint; with no model configured yet (a fresh stack), the REST API must answer HTTP at all.
# The whole response is read into a variable before it is matched: piping the socket into
# `head`/`grep -q` lets them exit early and kill the reader with SIGPIPE (141 under pipefail).
set -euo pipefail
config=${MODELS_CONFIG:-/models/models.config}
port=${REST_PORT:-8501}
ask() {  # the status line and body of GET $1 (bash only: the image has no curl)
  local response
  exec 3<>"/dev/tcp/127.0.0.1/${port}"
  printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&3
  response=$(cat <&3)
  exec 3<&-
  printf '%s' "$response"
}
models=$(grep -o 'name: *"[^"]*"' "$config" 2>/dev/null | sed 's/.*"\(.*\)"/\1/' || true)
if [ -z "$models" ]; then
  response=$(ask /v1/models/none)
  [[ $response =~ ^HTTP/1\.[01]\  ]]
  exit
fi
for model in $models; do
  response=$(ask "/v1/models/${model}")
  [[ $response =~ \"state\":\ *\"AVAILABLE\" ]]
done
