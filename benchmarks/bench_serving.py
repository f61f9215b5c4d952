"""Serving overhead: gRPC and REST (local `mura serve` in its own process) vs the SavedModel in-process.

For each architecture (baseline_cnn, densenet121 at 320x320, random weights: speed only), batch 1 and
16, and 1/4/16 concurrent clients: latency p50/p99 and images/s. Ratios: p50 latency over in-process
at batch 1 (target <= 1.3x) and throughput over in-process at batch 16 (target >= 0.85).

    python benchmarks/bench_serving.py --out benchmarks/results [--quick]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def served_name(arch: str) -> str:
    """The model name the benchmark serves `arch` under (the platform's naming rule)."""
    return f"mura_bench_{arch}"


def build_export(arch: str, size: int, root: Path, images: list[bytes]) -> Path:
    """Export a randomly initialised zoo model with the serving signatures."""
    from mura_core.contracts import class_map, parse_task
    from pipelines.export import export_saved_model
    from pipelines.training.zoo import build_model

    task = parse_task("binary")
    model = build_model(arch, task, (size, size), weights=None)
    return export_saved_model(model, class_map(task, arch, (size, size)), root / arch, images[:2])


def measure(call, batches: list, concurrency: int, requests_per_client: int) -> dict:
    """Run `call(batch)` from `concurrency` threads; latency percentiles (ms) and images/s."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(index: int):
        for step in range(requests_per_client):
            batch = batches[(index + step) % len(batches)]
            started = time.perf_counter()
            call(batch)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    call(batches[0])  # warm the path (connection, graph) outside the timing
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    wall = time.perf_counter() - started
    images = sum(
        len(batches[(i + s) % len(batches)]) for i in range(concurrency) for s in range(requests_per_client)
    )
    return {
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3),
        "images_per_s": images / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write serving.json into this folder")
    parser.add_argument("--quick", action="store_true", help="baseline_cnn only, fewer requests (smoke run)")
    args = parser.parse_args()
    import grpc
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving import repository, samples

    archs = ["baseline_cnn"] if args.quick else ["baseline_cnn", "densenet121"]
    concurrencies = [1, 4] if args.quick else [1, 4, 16]
    per_client = 8 if args.quick else 30
    size = 320
    images = [samples.sample_png(512, 420, seed=i) for i in range(16)]  # MURA-like sizes
    results = {"quick": args.quick, "image_size": size, "cpu_count": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        root = Path(scratch)
        base = root / "models"
        for arch in archs:
            repository.publish_version(
                build_export(arch, size, root / "exports", images), served_name(arch), base_path=base
            )
            repository.set_served_versions(served_name(arch), [1], {}, base / "models.config", base)
        from mura_core.ports import free_ports

        grpc_port, rest_port = free_ports(2)
        command = [sys.executable, "-m", "pipelines.cli", "serve", "--local", "--port", str(grpc_port),
                   "--rest_api_port", str(rest_port), "--model_config_file", str(base / "models.config")]  # fmt: skip
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            server.stdout.readline()  # "mura serve: gRPC on ..." once the models are loaded
            channel = grpc.insecure_channel(
                f"127.0.0.1:{grpc_port}", options=[("grpc.max_receive_message_length", 1 << 26)]
            )
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            local = threading.local()
            for arch in archs:
                loaded = tf.saved_model.load(str(base / served_name(arch) / "1"))
                function = loaded.signatures["serving_default"]

                def in_process(batch, function=function):
                    return function(image_bytes=tf.constant(batch))["abnormal_probability"].numpy()

                def over_grpc(batch, arch=arch):
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = served_name(arch)
                    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
                    return stub.Predict(request, timeout=600)

                def over_rest(batch, arch=arch):
                    session = getattr(local, "session", None) or requests.Session()
                    local.session = session
                    body = {"instances": [{"b64": base64.b64encode(image).decode()} for image in batch]}
                    response = session.post(
                        f"http://127.0.0.1:{rest_port}/v1/models/{served_name(arch)}:predict",
                        json=body,
                        timeout=600,
                    )
                    response.raise_for_status()

                for batch_size in (1, 16):
                    batches = (
                        [images[i : i + batch_size] for i in range(0, 16, batch_size)]
                        if batch_size > 1
                        else [[image] for image in images]
                    )
                    for concurrency in concurrencies:
                        row = {"arch": arch, "batch": batch_size, "concurrency": concurrency}
                        for name, call in (
                            ("in_process", in_process),
                            ("grpc", over_grpc),
                            ("rest", over_rest),
                        ):
                            row[name] = measure(
                                call,
                                batches,
                                concurrency,
                                per_client if batch_size == 1 else max(2, per_client // 4),
                            )
                        for name in ("grpc", "rest"):
                            row[f"{name}_p50_ratio"] = row[name]["p50_ms"] / row["in_process"]["p50_ms"]
                            row[f"{name}_throughput_ratio"] = (
                                row[name]["images_per_s"] / row["in_process"]["images_per_s"]
                            )
                        results["runs"].append(row)
                        print(json.dumps(row), flush=True)
            channel.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "serving.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
