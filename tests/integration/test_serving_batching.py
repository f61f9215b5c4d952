"""Request batching (`--enable_batching`): concurrent requests run together and each gets its own rows."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mura_core.settings import get_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_compose_batching_file_parses_as_tf_serving_reads_it():
    from serving.server.batching import read_batching_parameters

    parameters = read_batching_parameters(
        get_settings().repo_root / "infra" / "tfserving" / "batching.config"
    )
    assert (parameters.max_batch_size, parameters.batch_timeout_micros) == (32, 2000)
    assert (parameters.num_batch_threads, parameters.max_enqueued_batches) == (4, 100)


def test_allowed_batch_sizes_must_end_with_the_maximum(tmp_path):
    from serving.server.batching import read_batching_parameters
    from serving.server.status import ServingError

    path = tmp_path / "batching.config"
    path.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n")
    with pytest.raises(ServingError, match="end with max_batch_size"):
        read_batching_parameters(path)


@pytest.fixture
def batched(tmp_path):
    from serving import samples
    from serving.server import ServerOptions, start_server

    samples.write_linear_saved_model(tmp_path / "linear" / "1")
    config = tmp_path / "batching.config"
    config.write_text(
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 300000 }\nnum_batch_threads { value: 1 }\n"
        "max_enqueued_batches { value: 4 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
    )
    handle = start_server(
        ServerOptions(
            port=0,
            rest_api_port=0,
            model_name="linear",
            model_base_path=str(tmp_path / "linear"),
            enable_batching=True,
            batching_parameters_file=str(config),
        )
    )
    yield handle
    handle.stop()
    shutil.rmtree(tmp_path / "linear", ignore_errors=True)


def _post(handle, instances):
    return requests.post(
        f"{handle.rest_url}/v1/models/linear:predict", json={"instances": instances}, timeout=30
    )


def test_concurrent_requests_share_batches_and_get_their_own_rows(batched):
    values = [float(index) for index in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda value: _post(batched, [value]), values))
    assert [answer.json()["predictions"] for answer in answers] == [[0.5 * value + 2.0] for value in values]
    counters = batched.batcher.counters
    assert counters["items"] >= 8 and counters["batches"] < 8  # 8 requests, fewer model runs


def test_a_bad_request_fails_alone_and_a_padded_batch_answers_right(batched):
    with ThreadPoolExecutor(3) as pool:
        good = [pool.submit(_post, batched, [value]) for value in (1.0, 3.0)]
        bad = pool.submit(_post, batched, ["not a float"])
    assert bad.result().status_code == 400
    assert [future.result().json()["predictions"] for future in good] == [[2.5], [3.5]]
    answer = _post(batched, [1.0, 2.0, 3.0])  # 3 rows, padded to the allowed size 4
    assert answer.json() == {"predictions": [2.5, 3.0, 3.5]}
    too_big = _post(batched, [1.0] * 9)
    assert too_big.status_code == 400 and "larger than maximum input batch size 8" in too_big.json()["error"]
