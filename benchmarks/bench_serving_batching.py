"""Request batching on the local server: 16 concurrent batch-1 gRPC clients, with and without batching.

    python benchmarks/bench_serving_batching.py --out benchmarks/results [--arch densenet121] [--quick]

Both servers serve the same export of a randomly initialised zoo model (speed does not depend on the
weights) with the batching parameters compose gives TF Serving (`infra/tfserving/batching.config`).
Reports images/s at 16 clients and p50 latency at 1 client for each, and the ratios (batched /
unbatched) measured in the same run. Targets: >= 1.5x throughput at 16 clients; p50 at 1 client no
worse than 1.1x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_serving import build_export, served_name  # noqa: E402


def _serve(base: Path, batching: Path | None) -> tuple[subprocess.Popen, int]:
    from mura_core.ports import free_ports

    grpc_port, rest_port = free_ports(2)
    command = [sys.executable, "-m", "serving.server", "--local", f"--port={grpc_port}",
               f"--rest_api_port={rest_port}", f"--model_config_file={base / 'models.config'}",
               "--file_system_poll_wait_seconds=0", "--model_config_file_poll_wait_seconds=0"]  # fmt: skip
    if batching is not None:
        command += ["--enable_batching=true", f"--batching_parameters_file={batching}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    process.stdout.readline()  # "mura serve: gRPC on ..." once the model is loaded
    return process, grpc_port


def _measure(port: int, model: str, images: list[bytes], clients: int, per_client: int) -> dict:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    requests = []
    for image in images:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string))
        requests.append(request)
    for request in requests[:2]:
        stub.Predict(request, 600)  # warm
    latencies: list[float] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for step in range(per_client):
            started = time.perf_counter()
            stub.Predict(requests[(index + step) % len(requests)], 600)
            with lock:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "images_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write serving_batching.json into this folder")
    parser.add_argument("--arch", default="densenet121")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument(
        "--quick", action="store_true", help="baseline_cnn at 64 px, few requests (smoke run)"
    )
    parser.add_argument("--parameters", type=Path, help="BatchingParameters file (default: compose's)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving import repository, samples

    arch, size = ("baseline_cnn", 64) if args.quick else (args.arch, args.size)
    per_client = 2 if args.quick else 6
    parameters = (
        args.parameters or Path(__file__).resolve().parent.parent / "infra" / "tfserving" / "batching.config"
    )
    images = [samples.sample_png(300 + 7 * index, 280 + 5 * index, seed=index) for index in range(16)]
    result = {
        "arch": arch,
        "image_size": size,
        "cpu_count": os.cpu_count(),
        "parameters": parameters.read_text(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as scratch:
        root = Path(scratch)
        base = root / "models"
        model = served_name(arch)
        repository.publish_version(build_export(arch, size, root / "exports", images), model, base_path=base)
        repository.set_served_versions(model, [1], {}, base / "models.config", base)
        for name, batching in (("unbatched", None), ("batched", parameters)):
            process, port = _serve(base, batching)
            try:
                result[name] = {
                    "one_client": _measure(port, model, images, 1, per_client * 2),
                    "sixteen_clients": _measure(port, model, images, 16, per_client),
                }
            finally:
                process.terminate()
                process.wait(timeout=30)
            print(json.dumps({name: result[name]}), flush=True)
    result["throughput_ratio_16_clients"] = (
        result["batched"]["sixteen_clients"]["images_per_s"]
        / result["unbatched"]["sixteen_clients"]["images_per_s"]
    )
    result["p50_ratio_1_client"] = (
        result["batched"]["one_client"]["p50_ms"] / result["unbatched"]["one_client"]["p50_ms"]
    )
    print(json.dumps({key: result[key] for key in ("throughput_ratio_16_clients", "p50_ratio_1_client")}))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "serving_batching.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
