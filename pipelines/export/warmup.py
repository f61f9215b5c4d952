"""TF Serving's warm-up file (`assets.extra/tf_serving_warmup_requests`): PredictionLog records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.contracts import INPUT_IMAGE_BYTES, SERVING_SIGNATURE, WARMUP_ASSET


def write_warmup_file(saved_model_dir: Path, model_name: str, sample_images: list[bytes]) -> Path:
    """Write assets.extra/tf_serving_warmup_requests: one PredictionLog per sample image."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(saved_model_dir) / "assets.extra" / WARMUP_ASSET
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in sample_images:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_SIGNATURE)
            )
            request.inputs[INPUT_IMAGE_BYTES].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_file(saved_model_dir: Path) -> list:
    """The PredictionLog records of a SavedModel's warm-up file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(saved_model_dir) / "assets.extra" / WARMUP_ASSET
    records = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        records.append(prediction_log_pb2.PredictionLog.FromString(raw))
    return records


def placeholder_image(size: int = 64) -> bytes:
    """A small grey gradient PNG, used for warm-up when no sample image is at hand."""
    import tensorflow as tf

    ramp = np.linspace(0, 255, size, dtype=np.float32)
    grey = np.outer(ramp, ramp[::-1]) / 255.0
    return tf.io.encode_png(grey.astype(np.uint8)[:, :, None]).numpy()
