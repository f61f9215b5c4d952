"""Start and stop the local TF-Serving-compatible server (in-process handle or blocking `mura serve`)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from serving.server.config import ServerOptions, read_model_configs, read_monitoring_path
from serving.server.core import ServingCore
from serving.server.grpc_service import start_grpc_server
from serving.server.manager import ModelManager
from serving.server.metrics import Metrics
from serving.server.rest import RestServer, start_rest_server
from serving.server.servable import ImageLimits
from serving.server.status import ServingError

if TYPE_CHECKING:
    import grpc

LOGGER = logging.getLogger(__name__)


@dataclass
class ServerHandle:
    """A running server: its ports, its model manager, and stop()."""

    grpc_port: int
    rest_port: int
    host: str
    manager: ModelManager
    metrics: Metrics
    _grpc_server: grpc.Server | None = None
    _rest_server: RestServer | None = None
    _stop_event: threading.Event = field(default_factory=threading.Event)
    _poller: threading.Thread | None = None
    batcher: object = None  # the Batcher with --enable_batching (its counters: batches, items)

    @property
    def grpc_target(self) -> str:
        """host:port for gRPC clients."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API."""
        return f"http://{self.host}:{self.rest_port}"

    def stop(self, grace_seconds: float = 2.0) -> None:
        """Stop polling, finish in-flight requests (up to `grace_seconds`) and close both ports."""
        self._stop_event.set()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace_seconds).wait()
        if self._rest_server is not None:
            self._rest_server.shutdown()
            self._rest_server.server_close()
        if self._poller is not None:
            self._poller.join(timeout=10)

    def wait(self) -> None:
        """Block until stop() is called (or the process is interrupted)."""
        while not self._stop_event.wait(0.5):
            pass


def start_server(options: ServerOptions) -> ServerHandle:
    """Load the configured models, open the gRPC and REST ports and start polling; returns a handle."""
    metrics = Metrics()
    limits = ImageLimits(max_pixels=options.max_image_pixels, max_side=options.max_image_side)
    manager = ModelManager(limits, on_load=metrics.record_load)
    try:
        manager.apply_config(read_model_configs(options))
    except ServingError as error:  # a bad label at start-up: serve the rest, say what is wrong
        LOGGER.error("model config: %s", error.message)
    batcher = None
    if options.enable_batching:
        from serving.server.batching import Batcher, BatchingParameters, read_batching_parameters

        parameters = (
            read_batching_parameters(options.batching_parameters_file)
            if options.batching_parameters_file
            else BatchingParameters()
        )
        batcher = Batcher(parameters)
        LOGGER.info("request batching on: %s", parameters)
    core = ServingCore(manager, metrics, options.max_request_batch_size, batcher)
    metrics_path = read_monitoring_path(options.monitoring_config_file)
    host = options.bind_address
    grpc_server, grpc_port = start_grpc_server(
        core, manager.apply_config, f"{host}:{options.port}", options.grpc_workers, options.max_request_bytes
    )
    try:
        rest_server, rest_port = start_rest_server(
            core, host, options.rest_api_port, options.max_request_bytes, metrics_path
        )
    except OSError as error:
        grpc_server.stop(0)
        raise ServingError(
            "UNAVAILABLE", f"cannot listen on {host}:{options.rest_api_port} for REST: {error}"
        ) from error
    handle = ServerHandle(
        grpc_port, rest_port, "127.0.0.1" if host in ("0.0.0.0", "") else host, manager, metrics
    )
    handle._grpc_server, handle._rest_server, handle.batcher = grpc_server, rest_server, batcher
    handle._poller = threading.Thread(target=_poll, args=(handle, options), name="mura-poll", daemon=True)
    handle._poller.start()
    LOGGER.info("serving gRPC on %s:%s and REST on %s:%s", host, grpc_port, host, rest_port)
    return handle


def _poll(handle: ServerHandle, options: ServerOptions) -> None:
    """Poll the base paths (and the config file when asked) like tensorflow_model_server does."""
    file_wait = float(options.file_system_poll_wait_seconds)
    config_wait = float(options.model_config_file_poll_wait_seconds) if options.model_config_file else 0.0
    waits = [wait for wait in (file_wait, config_wait) if wait > 0]
    if not waits:
        return  # TF Serving: 0 means "load once at start-up"
    tick = min(waits)
    since_config = since_files = 0.0
    while not handle._stop_event.wait(tick):
        since_config += tick
        since_files += tick
        try:
            if config_wait and since_config >= config_wait:
                since_config = 0.0
                # Re-applied on every tick, changed or not (TF Serving does the same): a model that a
                # ReloadConfig request dropped comes back from the file.
                handle.manager.apply_config(read_model_configs(options))
                continue
            if file_wait and since_files >= file_wait:
                since_files = 0.0
                handle.manager.poll()
        except ServingError as error:
            LOGGER.error("reloading the model config: %s", error.message)
        except Exception as error:  # noqa: BLE001 - the poller must survive a bad config file
            LOGGER.error("polling failed: %s", error)
