"""Soak of the local server: 16 clients mixing gRPC and REST for a minute, a new version published and
`stable` moved mid-run, then `kill -9` and a restart.

    python benchmarks/bench_serving_soak.py --out benchmarks/results [--seconds 60] [--quick]

Reports failed requests outside the kill window (target 0), p50/p99 latency, requests/s, and the
server's RSS growth from warm-up to just before the kill (target < 5 %). The kill window runs from
the kill to one second after the restarted server answers; a request in flight at the kill is in it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_serving import build_export  # noqa: E402

MODEL = "mura_soak"
CLIENTS = 16


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    """The server process on a models.config, restartable on the same ports."""

    def __init__(self, config: Path):
        from mura_core.ports import free_ports

        self.config = config
        self.grpc_port, self.rest_port = free_ports(2)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "serving.server", "--local", f"--port={self.grpc_port}",
                   f"--rest_api_port={self.rest_port}", f"--model_config_file={self.config}",
                   "--model_config_file_poll_wait_seconds=0.5", "--file_system_poll_wait_seconds=0.5"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.process.stdout.readline()  # printed once the models are loaded and both ports listen

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def version_state(self, version: int) -> str:
        import requests

        try:
            answer = requests.get(
                f"http://127.0.0.1:{self.rest_port}/v1/models/{MODEL}/versions/{version}", timeout=5
            )
            return answer.json()["model_version_status"][0]["state"]
        except (requests.RequestException, KeyError, ValueError):
            return "UNKNOWN"


def _client(server: Server, images: list[bytes], index: int, stop: threading.Event, log: list, lock) -> None:
    import grpc
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    )
    session = requests.Session()
    step = 0
    while not stop.is_set():
        image = images[(index + step) % len(images)]
        use_grpc = (index + step) % 2 == 0
        started = time.monotonic()
        ok = True
        try:
            if use_grpc:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = MODEL
                request.model_spec.version_label = "stable"
                request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string))
                stub.Predict(request, 30)
            else:
                body = {"instances": [{"b64": base64.b64encode(image).decode()}]}
                answer = session.post(
                    f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL}/labels/stable:predict",
                    json=body,
                    timeout=30,
                )
                ok = answer.status_code == 200
        except Exception:  # noqa: BLE001 - every failure is counted, whatever its kind
            ok = False
        with lock:
            log.append((started, time.monotonic() - started, ok))
        step += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write serving_soak.json into this folder")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="15 s (smoke run)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving import repository, samples

    seconds = 15.0 if args.quick else args.seconds
    images = [samples.sample_png(120 + 9 * index, 100 + 7 * index, seed=index) for index in range(8)]
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as scratch:
        root = Path(scratch)
        base, config = root / "models", root / "models" / "models.config"
        exports = [build_export("baseline_cnn", 64, root / f"exports{number}", images) for number in (1, 2)]
        repository.publish_version(exports[0], MODEL, 1, base)
        repository.set_served_versions(MODEL, [1], {"stable": 1}, config, base)
        server = Server(config)
        server.start()
        log: list = []
        lock, stop = threading.Lock(), threading.Event()
        threads = [
            threading.Thread(target=_client, args=(server, images, index, stop, log, lock))
            for index in range(CLIENTS)
        ]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        events = {}
        time.sleep(seconds * 0.15)
        rss_warm = _rss_kib(server.process.pid)
        time.sleep(seconds * 0.2)
        # A new version, loaded first, then `stable` moved (the reconciler's two phases).
        repository.publish_version(exports[1], MODEL, 2, base)
        repository.set_served_versions(MODEL, [1, 2], {"stable": 1}, config, base)
        while server.version_state(2) != "AVAILABLE":
            time.sleep(0.1)
        repository.set_served_versions(MODEL, [1, 2], {"stable": 2}, config, base)
        events["stable_moved"] = time.monotonic() - began
        time.sleep(seconds * 0.3)
        rss_before_kill = _rss_kib(server.process.pid)
        kill_at = time.monotonic()
        server.kill()
        server.start()
        while server.version_state(2) != "AVAILABLE":
            time.sleep(0.05)
        ready_at = time.monotonic()
        events["killed"], events["ready_again"] = kill_at - began, ready_at - began
        time.sleep(max(0.0, seconds - (time.monotonic() - began)))
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server.process.terminate()
        server.process.wait(timeout=30)
    window = (kill_at, ready_at + 1.0)

    def overlaps(entry) -> bool:  # a request in flight at the kill is inside the window too
        started, duration, _ = entry
        return started <= window[1] and started + duration >= window[0]

    outside = [entry for entry in log if not overlaps(entry)]
    inside = [entry for entry in log if overlaps(entry)]
    latencies = sorted(entry[1] * 1000 for entry in outside if entry[2])
    result = {
        "seconds": seconds,
        "clients": CLIENTS,
        "requests": len(log),
        "requests_per_s": len(log) / seconds,
        "failed_outside_kill_window": sum(not entry[2] for entry in outside),
        "failed_inside_kill_window": sum(not entry[2] for entry in inside),
        "kill_window_s": window[1] - window[0],
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "rss_warm_kib": rss_warm,
        "rss_before_kill_kib": rss_before_kill,
        "rss_growth_percent": 100.0 * (rss_before_kill - rss_warm) / rss_warm,
        "events_s": events,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "serving_soak.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
