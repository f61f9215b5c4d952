"""TF Serving's warm-up file (`assets.extra/tf_serving_warmup_requests`): PredictionLog records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mura_core.contracts import INPUT_IMAGE_BYTES, SERVING_SIGNATURE, WARMUP_ASSET


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
    """The PredictionLog records of a SavedModel's warm-up file, read without TensorFlow (the deploy and
    its smoke prediction need no TensorFlow: importing it costs seconds to a minute)."""
    from serving import message

    path = Path(saved_model_dir) / "assets.extra" / WARMUP_ASSET
    prediction_log = message("tensorflow.serving.PredictionLog")
    return [prediction_log.FromString(record) for record in tfrecords(path.read_bytes(), str(path))]


def tfrecords(data: bytes, source: str) -> list[bytes]:
    """The records of a TFRecord file: each is a little-endian uint64 length, its 4-byte CRC, the
    record, the record's 4-byte CRC. The framing is checked (a cut-off file is refused naming the
    place); the CRCs are not (the version's registered content hash, `serving.sha256` over every file
    of the SavedModel, is checked before it is published)."""
    records, offset = [], 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise ValueError(
                f"{source}: the record header at byte {offset} is cut off (a half-written file?)"
            )
        length = int.from_bytes(data[offset : offset + 8], "little")
        end = offset + 12 + length + 4
        if end > len(data):
            raise ValueError(
                f"{source}: the record at byte {offset} says {length} bytes but the file ends first "
                "(a half-written file?)"
            )
        records.append(data[offset + 12 : offset + 12 + length])
        offset = end
    return records


def placeholder_image(size: int = 64) -> bytes:
    """A small grey gradient PNG, used for warm-up when no sample image is at hand."""
    import tensorflow as tf

    ramp = np.linspace(0, 255, size, dtype=np.float32)
    grey = np.outer(ramp, ramp[::-1]) / 255.0
    return tf.io.encode_png(grey.astype(np.uint8)[:, :, None]).numpy()
