"""The local TF-Serving-compatible server: gRPC PredictionService/ModelService and TF Serving's REST API.

`start_server(ServerOptions(...))` returns a handle with `stop()`; `mura serve` wraps it.
"""

from serving.server.config import ServerOptions, options_from_params
from serving.server.runtime import ServerHandle, start_server

__all__ = ["ServerHandle", "ServerOptions", "options_from_params", "start_server"]
