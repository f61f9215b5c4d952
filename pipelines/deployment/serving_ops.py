"""What the reconciler asks of a running TF Serving: reload the config, wait for versions, smoke-predict.

Predictions and statuses go through serving.client.ServingClient; HandleReloadConfigRequest is not in
that client (it is no REST call), so this module sends it itself, with serving.protos' messages: no
step of a deploy imports TensorFlow.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from mura_core.contracts import INPUT_IMAGE_BYTES, WARMUP_ASSET
from mura_core.errors import DeployError

LOGGER = logging.getLogger(__name__)


class ServingTarget:
    """One TF Serving (or `mura serve`) gRPC endpoint, as seen by the reconciler."""

    def __init__(self, grpc_target: str, timeout_seconds: float = 30.0):
        from serving import ServingClient

        self.target = grpc_target
        self.timeout_seconds = timeout_seconds
        self.client = ServingClient(grpc_target, protocol="grpc", timeout=timeout_seconds)

    def close(self) -> None:
        """Close the gRPC channels."""
        self.client.close()

    def reload_config(self, config) -> None:
        """Send the whole ModelServerConfig with ModelService.HandleReloadConfigRequest."""
        import grpc

        from serving import MODEL_SERVICE, message

        request = reload_request(config)
        with grpc.insecure_channel(self.target) as channel:
            reload = channel.unary_unary(
                MODEL_SERVICE + "HandleReloadConfigRequest",
                request_serializer=type(request).SerializeToString,
                response_deserializer=message("tensorflow.serving.ReloadConfigResponse").FromString,
            )
            try:
                response = reload(request, timeout=self.timeout_seconds)
            except grpc.RpcError as error:
                raise DeployError(
                    f"TF Serving at {self.target} refused the config reload ({error.code().name}: {error.details()}); "
                    "is it running (`mura serve`) and is MURA_SERVING_GRPC right?"
                ) from error
        if response.status.error_code != 0:
            raise DeployError(
                f"TF Serving at {self.target} rejected the new config: {response.status.error_message}"
            )

    def version_states(self, model: str) -> dict[int, tuple[str, str]]:
        """version -> (state, error message) from GetModelStatus; empty when the model is unknown."""
        from serving import ServingClientError

        try:
            statuses = self.client.model_status(model)
        except ServingClientError as error:
            if error.code == "NOT_FOUND":
                return {}
            raise DeployError(f"GetModelStatus({model}) on {self.target} failed: {error}") from error
        return {int(entry["version"]): (entry["state"], entry["error_message"]) for entry in statuses}

    def label_version(self, model: str, label: str) -> int | None:
        """The version `label` resolves to on the server, or None when the label is unknown."""
        from serving import ServingClientError

        try:
            statuses = self.client.model_status(model, label=label)
        except ServingClientError as error:
            if error.code in ("INVALID_ARGUMENT", "NOT_FOUND"):
                return None
            raise DeployError(
                f"GetModelStatus({model}, label {label}) on {self.target} failed: {error}"
            ) from error
        return int(statuses[0]["version"]) if statuses else None

    def wait_available(self, model: str, versions: list[int], timeout_seconds: float) -> None:
        """Wait until every version is AVAILABLE; DeployError at once when one failed to load."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            states = self.version_states(model)
            pending = []
            for version in versions:
                state, message = states.get(version, ("UNKNOWN", ""))
                if state == "AVAILABLE":
                    continue
                if state == "END" and message:
                    raise DeployError(f"{model} v{version} failed to load on {self.target}: {message}")
                pending.append(f"v{version} {state}")
            if not pending:
                return
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{model}: {', '.join(pending)} not AVAILABLE after {timeout_seconds:.0f}s on {self.target}"
                )
            time.sleep(0.2)

    def wait_labels(self, model: str, labels: dict[str, int], timeout_seconds: float) -> None:
        """Wait until each label resolves to its version on the server (config polling may lag)."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            wrong = {label: self.label_version(model, label) for label in labels}
            wrong = {label: found for label, found in wrong.items() if found != labels[label]}
            if not wrong:
                return
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{model}: labels {wrong} on {self.target} still differ from {labels} after {timeout_seconds:.0f}s"
                )
            time.sleep(0.2)

    def smoke_predict(
        self, model: str, label: str, expected_version: int, images: list[bytes]
    ) -> list[float]:
        """Predict `images` through `label`; DeployError unless the expected version answers sane probabilities."""
        from serving import ServingClientError

        try:
            results = self.client.predict_images(images, model=model, label=label)
        except ServingClientError as error:
            raise DeployError(f"smoke prediction of {model} label {label} failed: {error}") from error
        probabilities = [float(result["abnormal_probability"]) for result in results]
        served = results[0]["version"] if results else None
        if served != expected_version:
            raise DeployError(
                f"smoke prediction of {model} label {label}: answered by v{served}, expected v{expected_version}"
            )
        if not all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in probabilities):
            raise DeployError(
                f"smoke prediction of {model} v{expected_version}: probabilities {probabilities} are not in [0, 1]"
            )
        return probabilities


class ServingReplicas:
    """Every serving process behind the gateway, driven as one: each reloads, loads and labels alike,
    so whichever replica the gateway picks answers with the same version. A replica other than the
    first that accepts no connection (down, restarting, or a standalone `mura serve` without the
    stack's replica) is left out of the pass with a warning: it reads models.config when it starts."""

    def __init__(self, grpc_targets: tuple[str, ...], timeout_seconds: float = 30.0):
        first, *others = grpc_targets
        reachable = []
        for target in others:  # each probed once
            if _accepts(target):
                reachable.append(target)
            else:
                LOGGER.warning(
                    "serving replica %s does not answer: skipped (it reads models.config when it starts)",
                    target,
                )
        self.replicas = [ServingTarget(target, timeout_seconds) for target in (first, *reachable)]

    def close(self) -> None:
        """Close every replica's channels."""
        for replica in self.replicas:
            replica.close()

    def reload_config(self, config) -> None:
        """Send the config to every replica (DeployError naming the first that refuses)."""
        for replica in self.replicas:
            replica.reload_config(config)

    def wait_available(self, model: str, versions: list[int], timeout_seconds: float) -> None:
        """Wait until every replica has every version AVAILABLE."""
        for replica in self.replicas:
            replica.wait_available(model, versions, timeout_seconds)

    def wait_labels(self, model: str, labels: dict[str, int], timeout_seconds: float) -> None:
        """Wait until each label resolves to its version on every replica."""
        for replica in self.replicas:
            replica.wait_labels(model, labels, timeout_seconds)

    def label_version(self, model: str, label: str) -> int | None:
        """The version `label` resolves to when every replica agrees; None when any differs."""
        found = {replica.label_version(model, label) for replica in self.replicas}
        return found.pop() if len(found) == 1 else None

    def smoke_predict(
        self, model: str, label: str, expected_version: int, images: list[bytes]
    ) -> list[float]:
        """Smoke-predict on every replica; the first replica's probabilities."""
        answers = [replica.smoke_predict(model, label, expected_version, images) for replica in self.replicas]
        return answers[0]


def _accepts(target: str) -> bool:
    """True when something accepts a TCP connection at host:port."""
    import socket

    from mura_core.ports import host_port

    try:
        socket.create_connection(host_port(target), timeout=1).close()
    except OSError:
        return False
    return True


def reload_request(config):
    """A ReloadConfigRequest carrying `config` (a ModelServerConfig of the official module, which imports
    no TensorFlow; the request's message type is serving.protos', so the config goes over as bytes)."""
    from serving import message

    request = message("tensorflow.serving.ReloadConfigRequest")()
    request.config.ParseFromString(config.SerializeToString())
    return request


def sample_images(saved_model_dir: Path, count: int) -> list[bytes]:
    """Up to `count` encoded images from the version's warm-up file (a generated PNG when it has none)."""
    images: list[bytes] = []
    warmup = Path(saved_model_dir) / "assets.extra" / WARMUP_ASSET
    if warmup.is_file():
        from pipelines.export import read_warmup_file
        from serving import make_ndarray

        try:
            records = read_warmup_file(saved_model_dir)
        except ValueError as error:
            raise DeployError(
                f"the version's warm-up file is unreadable: {error}; export it again"
            ) from error
        for record in records:
            if INPUT_IMAGE_BYTES in record.predict_log.request.inputs:
                tensor = record.predict_log.request.inputs[INPUT_IMAGE_BYTES]
                images.extend(bytes(value) for value in make_ndarray(tensor).reshape(-1))
    if not images:
        from serving import sample_png

        images = [sample_png(64, 64, seed=index) for index in range(max(count, 1))]
    return images[: max(count, 1)]
