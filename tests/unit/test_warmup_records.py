"""The warm-up file read without TensorFlow: TFRecord framing, and a cut-off file refused by name."""

import pytest

from mura_core.contracts import INPUT_IMAGE_BYTES, WARMUP_ASSET
from mura_core.errors import DeployError
from pipelines.deployment.serving_ops import sample_images
from pipelines.export.warmup import tfrecords


def _framed(*records: bytes) -> bytes:
    """TFRecord framing with dummy CRCs (the reader checks lengths, not CRCs)."""
    return b"".join(len(record).to_bytes(8, "little") + b"\0" * 4 + record + b"\0" * 4 for record in records)


def _warmup(saved_model, images: list[bytes]) -> None:
    from serving.protos import make_tensor_proto, message

    logs = []
    for image in images:
        log = message("tensorflow.serving.PredictionLog")()
        log.predict_log.request.inputs[INPUT_IMAGE_BYTES].CopyFrom(make_tensor_proto([image]))
        logs.append(log.SerializeToString())
    (saved_model / "assets.extra").mkdir(parents=True)
    (saved_model / "assets.extra" / WARMUP_ASSET).write_bytes(_framed(*logs))


def test_records_come_back_in_order_and_an_empty_file_has_none():
    assert tfrecords(_framed(b"one", b"", b"three"), "f") == [b"one", b"", b"three"]
    assert tfrecords(b"", "f") == []


@pytest.mark.parametrize("cut", [5, 12 + 3, 12 + 3 + 2])
def test_a_cut_off_file_is_refused_naming_the_place(cut):
    data = _framed(b"abc", b"defg")
    with pytest.raises(ValueError, match=r"warmup: the record (header )?at byte \d+ .*half-written"):
        tfrecords(data[: len(_framed(b"abc")) + cut], "warmup")


def test_the_smoke_images_are_the_warm_up_file_s_and_a_cut_off_file_stops_the_deploy(tmp_path):
    images = [b"\x89PNG first", b"\x89PNG second", b"\x89PNG third"]
    _warmup(tmp_path, images)
    assert sample_images(tmp_path, 2) == images[:2]
    path = tmp_path / "assets.extra" / WARMUP_ASSET
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DeployError, match="warm-up file is unreadable.*export it again"):
        sample_images(tmp_path, 2)
