"""Clients of TF Serving (the real one or `mura serve`) over gRPC (official stubs) or REST.

`ServingClient.predict_image` / `predict_study` return the model's answer for one image or a study
(the mean of its images' probabilities, as in the MURA paper). The seed project's helpers
`calculate_binary` and `calculate_14cls` are kept for its users.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from mura_core.contracts import (
    CANARY,
    DEFAULT_MODEL,
    IMAGE_SUFFIXES,
    INPUT_IMAGE_BYTES,
    OUTPUT_STUDY_CALIBRATION,
    STABLE,
    calibrated,
    challenger_model_name,
    is_hidden,
    parse_task,
    served_model_name,
)
from mura_core.errors import DataError
from serving.client_transport import GrpcTransport, RestTransport, Security
from serving.errors import ServingClientError

PART_IN_PATH = re.compile(r"^XR_[A-Z]+$")


def body_part_from_path(path: Path) -> str | None:
    """The `XR_<PART>` folder a MURA image or study path sits in, if any."""
    return next((part for part in reversed(Path(path).parts) if PART_IN_PATH.match(part)), None)


def study_images(folder: Path) -> list[Path]:
    """The PNG/JPEG images of a study folder, by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"{folder} is not a folder: pass a study folder such as .../patient00001/study1_positive/"
        )
    images = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p.name)
    )
    if not images:
        raise DataError(f"{folder} holds no PNG or JPEG image")
    return images


def study_folders(root: Path) -> list[Path]:
    """The study folders at or under `root`: itself when it holds images, else every folder below that
    does (a patient or a study-type folder), in name order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: pass an image, a study, a patient or a study-type folder")

    def holds_images(folder: Path) -> bool:
        return any(p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p.name) for p in folder.iterdir())

    if holds_images(root):
        return [root]
    found = sorted(
        folder
        for folder in root.rglob("*")
        if folder.is_dir()
        and not any(is_hidden(part) for part in folder.relative_to(root).parts)
        and holds_images(folder)
    )
    if not found:
        raise DataError(
            f"{root} holds no PNG or JPEG image in it or in any folder below it: pass an image, a study "
            "folder (.../patient00001/study1_positive/), a patient folder or a study-type folder (XR_WRIST/)"
        )
    return found


class ServingClient:
    """Predictions from a TF Serving endpoint; `target` defaults to MURA_SERVING_GRPC / MURA_SERVING_REST."""

    def __init__(
        self,
        target: str | None = None,
        protocol: str = "grpc",
        timeout: float = 30.0,
        tls_ca: str | Path | None = None,
        token: str | None = None,
    ):
        """`tls_ca` (default MURA_SERVING_TLS_CA): trust this certificate and speak TLS (the gateway);
        `token` (default MURA_SERVING_TOKEN): sent as `Authorization: Bearer`."""
        from mura_core.config import load_config
        from mura_core.settings import get_settings

        if protocol not in ("grpc", "rest"):
            raise ServingClientError(f"protocol {protocol!r}: use 'grpc' or 'rest'", "INVALID_ARGUMENT")
        settings = get_settings()
        self.protocol = protocol
        self.target = target or (settings.serving_grpc if protocol == "grpc" else settings.serving_rest)
        self.threshold = load_config().evaluation.threshold
        transport = GrpcTransport if protocol == "grpc" else RestTransport
        security = Security.of(tls_ca or settings.serving_tls_ca, token or settings.serving_token)
        self._transport = transport(self.target, timeout, security)

    def close(self) -> None:
        """Close the connection."""
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def predict(
        self,
        inputs: dict[str, Any],
        model: str,
        version: int | None = None,
        label: str | None = None,
        signature_name: str = "",
    ) -> tuple[dict[str, np.ndarray], int | None]:
        """Run any signature: (outputs as numpy arrays, served version or None over REST)."""
        if version is not None and label:
            raise ServingClientError("give a version or a label, not both", "INVALID_ARGUMENT")
        arrays = {
            name: np.asarray(value, dtype=object if _is_bytes(value) else None)
            for name, value in inputs.items()
        }
        served = served_model_name(model, label)
        try:
            return self._transport.predict(arrays, served, version, label, signature_name)
        except ServingClientError as error:
            raise _explained(error, model, label) from None

    def predict_images(
        self,
        images: list[bytes],
        model: str = DEFAULT_MODEL,
        version: int | None = None,
        label: str | None = None,
    ) -> list[dict[str, Any]]:
        """One result dict per encoded image: abnormal_probability, label (and body_part for 14cls)."""
        outputs, served = self.predict({INPUT_IMAGE_BYTES: list(images)}, model, version, label)
        if "abnormal_probability" not in outputs:
            raise ServingClientError(
                f"{model} has no abnormal_probability output: is it a MURA model?", "INVALID_ARGUMENT"
            )
        results = []
        for index in range(len(images)):
            result = {"model": model, "version": served}
            for name, values in outputs.items():
                item = values[index]
                result[name] = item.decode() if isinstance(item, bytes) else np.asarray(item).tolist()
            results.append(result)
        return results

    def predict_image(
        self,
        image: str | Path | bytes,
        model: str = DEFAULT_MODEL,
        version: int | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """The prediction for one image (a path or the encoded bytes)."""
        if isinstance(image, bytes):
            data, source = image, None
        else:
            source = Path(image)
            if not source.is_file():
                raise DataError(f"{source} does not exist: pass a PNG or JPEG file or a study folder")
            data = source.read_bytes()
        result = self.predict_images([data], model, version, label)[0]
        result["path"] = str(source) if source else None
        return result

    def predict_study(
        self,
        folder: str | Path,
        model: str = DEFAULT_MODEL,
        version: int | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """A study's prediction: its abnormal probability (the model's study calibration of its images'
        mean raw probability; for a model without one, the mean of its images' probabilities), cut at
        the model's own threshold (its `threshold` output; params.yaml's for a model without one)."""
        paths = study_images(Path(folder))
        return self.predict_encoded_study(
            [p.read_bytes() for p in paths],
            [str(p) for p in paths],
            str(folder),
            body_part_from_path(Path(folder)),
            model,
            version,
            label,
        )

    def predict_encoded_study(
        self,
        images: list[bytes],
        names: list[str],
        study: str,
        body_part: str | None,
        model: str = DEFAULT_MODEL,
        version: int | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """`predict_study` on encoded images (a DICOM study converted by the one pixel path, say): the
        study is named `study`, its images `names`; `body_part` unless the model reads its own."""
        per_image = self.predict_images(images, model, version, label)
        for name, result in zip(names, per_image, strict=True):
            result["path"] = name
        probability = study_probability(per_image)
        threshold = float(per_image[0].get("threshold", self.threshold))
        parts = [result["body_part"] for result in per_image if "body_part" in result]
        return {
            "study": study,
            "model": model,
            "version": per_image[0]["version"],
            "body_part": max(set(parts), key=parts.count) if parts else body_part,
            "abnormal_probability": probability,
            "label": "abnormal" if probability >= threshold else "normal",
            "threshold": threshold,
            "images": per_image,
        }

    def explain_images(
        self,
        images: list[bytes],
        model: str = DEFAULT_MODEL,
        version: int | None = None,
        label: str | None = None,
    ) -> list[dict[str, Any]]:
        """Grad-CAM++ per encoded image (the `explain` signature): heatmap on the image's own pixels
        (height x width, 0..1) and the abnormal probability."""
        from serving.overlay import heatmap_on_image

        outputs, served = self.predict({INPUT_IMAGE_BYTES: list(images)}, model, version, label, "explain")
        if "heatmap" not in outputs:
            raise ServingClientError(f"{model} has no explain signature: export it again", "INVALID_ARGUMENT")
        return [
            {
                "heatmap": heatmap_on_image(
                    outputs["heatmap"][index], outputs["heatmap_box"][index], outputs["image_size"][index]
                ),
                "abnormal_probability": float(outputs["abnormal_probability"][index]),
                "version": served,
            }
            for index in range(len(images))
        ]

    def model_status(self, model: str, version: int | None = None, label: str | None = None) -> list[dict]:
        """[{version, state, error_code, error_message}] as GetModelStatus reports them."""
        try:
            return self._transport.model_status(served_model_name(model, label), version, label)
        except ServingClientError as error:
            raise _explained(error, model, label) from None


def _explained(error: ServingClientError, model: str, label: str | None) -> ServingClientError:
    """The server's answer, plus what became of a platform label that has no version now."""
    unknown_label = "Unrecognized servable version label" in str(error)
    if label == CANARY and (error.code == "NOT_FOUND" or unknown_label):
        return ServingClientError(
            f"no challenger of {model} is served (label {CANARY} asks {challenger_model_name(model)}): none "
            f"passed the gate since the last promotion, or it became champion and serves as {model} "
            f"(label {STABLE}); the server said: {error}",
            "NOT_FOUND",
        )
    if label and unknown_label:
        return ServingClientError(
            f"{model} has no version labelled {label!r} now: {STABLE} is its champion; the challenger "
            f"serves as {challenger_model_name(model)} ({CANARY}); the server said: {error}",
            error.code,
        )
    return error


def study_probability(per_image: list[dict[str, Any]]) -> float:
    """A study's abnormal probability from its images' answers (the served study calibration)."""
    calibration = per_image[0].get(OUTPUT_STUDY_CALIBRATION)
    if calibration is None:
        return float(np.mean([result["abnormal_probability"] for result in per_image]))
    temperature, shift = calibration
    # The contract's formula, on the study's mean raw probability.
    return float(calibrated(np.mean([result["raw_probability"] for result in per_image]), temperature, shift))


def _is_bytes(value) -> bool:
    return isinstance(value, bytes) or (
        isinstance(value, list | tuple) and bool(value) and isinstance(value[0], bytes)
    )


def _image_bytes(image: str | Path | bytes) -> bytes:
    if isinstance(image, bytes):
        return image
    path = Path(image)
    if not path.is_file():
        raise DataError(f"{path} does not exist: pass a PNG or JPEG file")
    return path.read_bytes()


def calculate_binary(model_name: str | None, part_body: str, image: str | Path | bytes) -> str:
    """Seed helper: "X-ray of XR_HUMERUS is abnormal." from a binary model (default mura_binary_<part>)."""
    model = model_name or parse_task(f"binary:{part_body}" if part_body else "binary").model_name
    with ServingClient() as client:
        result = client.predict_images([_image_bytes(image)], model=model)[0]
    return f"X-ray of {part_body} is {result['label']}."


def calculate_14cls(model_name: str | None, part_body: str | None, image: str | Path | bytes) -> str:
    """Seed helper: "XR_HUMERUS is abnormal." naming the body part the 14-class model recognised.

    `part_body` is what the caller believes the study type is; it is used only when the model gives
    no body part (the sentence always reports the model's own reading).
    """
    with ServingClient() as client:
        result = client.predict_images([_image_bytes(image)], model=model_name or "mura_14cls")[0]
    return f"{result.get('body_part') or part_body} is {result['label']}."
