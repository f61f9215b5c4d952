"""The foundation `pipelines` and `serving` both stand on: names and contracts, parameters
(params.yaml) and settings (the environment), errors, logs, wire formats, ports, and files written
privately or atomically. It imports nothing of either package above it."""

import os

# Nothing phones home: a hospital network allows no outbound call, and MLflow's telemetry once failed a
# training task's log-batch. Every process that imports the platform has the libraries' telemetry off
# unless its environment says otherwise; the stack and compose set the same for the processes they
# start (the MLflow server reads it before any platform code runs).
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1"}
for _name, _value in NO_TELEMETRY.items():
    os.environ.setdefault(_name, _value)
