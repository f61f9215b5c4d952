"""How the embedded stack heals: services killed with -9 under the supervisor (`mura up` on a scratch
MURA_HOME, a tiny exported model served, 2 cores).

Measured: (1) the first serving process killed 5 times: seconds from the kill until a gRPC Predict
answers again through the gateway (what clients use; the replica answers while the killed one
restarts; target < 5 s) and, for comparison, on the killed process's own port (its restart);
(2) 16 clients predicting in a bounded loop through the TLS gateway, each retrying UNAVAILABLE once
as gRPC clients do, across one serving kill: the share of requests that failed (target <= 1 %); the
baseline, in the same run, is the same load without a kill; (3) 20 kills of random services, each
waited out (seconds until healthy again, per service; the chaos target is 10 s), then `mura down`:
processes of the stack left (target 0); (4) a hung serving process (SIGSTOP: alive, not answering)
under 4 clients through the gateway for `--hang-seconds`: requests answered, failed and the worst
latency, against the same load with both replicas running (same run); and the seconds from the
SIGSTOP until the watchdog has killed it and it answers again on its own port.

    python benchmarks/bench_recovery.py --out benchmarks/results [--kills 5] [--random-kills 20]
    python benchmarks/bench_recovery.py --out benchmarks/results --hang-only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status(env) -> dict:
    from tests.support import mura

    return json.loads(mura(env, "status", "--json", check=False).stdout)["services"]


def _wait_healthy(env, name: str, old_pid: int, timeout: float = 180.0) -> float:
    """Seconds until `name` is healthy again with a new pid."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        entry = _status(env)[name]
        if entry["healthy"] and entry["pid"] not in (None, old_pid):
            return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"{name} did not come back within {timeout:.0f} s")


def _first_answer(target: str, image: bytes, since: float, **login) -> float:
    from serving.client import ServingClient, ServingClientError

    while time.perf_counter() - since < 180:
        try:
            with ServingClient(target, timeout=2, **login) as client:
                client.predict_images([image], model="mura_binary")
            return time.perf_counter() - since
        except ServingClientError:
            time.sleep(0.05)
    raise SystemExit(f"{target} did not answer within 180 s of a kill")


def _time_to_answer(env, image: bytes) -> dict:
    """Kill the first serving process; seconds until the gateway answers, then until it does itself."""
    pid = _status(env)["serving"]["pid"]
    killed = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    login = {"tls_ca": env["MURA_SERVING_TLS_CA"], "token": env.get("MURA_SERVING_TOKEN")}
    through_gateway = _first_answer(env["MURA_GATEWAY_GRPC"], image, killed, **login)
    killed_process = _first_answer(env["MURA_SERVING_GRPC"], image, killed)
    _wait_healthy(env, "serving", pid)  # the next kill finds both replicas up
    return {"gateway": through_gateway, "killed_process": killed_process}


def _gateway_client(env, timeout: float):
    """The platform's client of the stack's TLS gateway, with its token."""
    from serving.client import ServingClient

    return ServingClient(
        env["MURA_GATEWAY_GRPC"],
        timeout=timeout,
        tls_ca=env["MURA_SERVING_TLS_CA"],
        token=env.get("MURA_SERVING_TOKEN"),
    )


def _load(env, image: bytes, seconds: float, kill: bool) -> dict:
    """16 clients through the gateway for `seconds`; with `kill`, serving is killed after a third."""
    from serving.client import ServingClientError

    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client_loop() -> None:
        with _gateway_client(env, timeout=10) as client:
            while time.monotonic() < stop:
                outcome = "failed"
                for _ in range(2):  # the request and one retry, as a gRPC client retries UNAVAILABLE
                    try:
                        client.predict_images([image], model="mura_binary")
                        outcome = "ok"
                        break
                    except ServingClientError as error:
                        if error.code != "UNAVAILABLE":
                            break
                        time.sleep(0.2)
                with lock:
                    counts[outcome] += 1

    threads = [threading.Thread(target=client_loop) for _ in range(16)]
    for thread in threads:
        thread.start()
    if kill:
        time.sleep(seconds / 3)
        os.kill(_status(env)["serving"]["pid"], signal.SIGKILL)
    for thread in threads:
        thread.join()
    total = counts["ok"] + counts["failed"]
    return {**counts, "failed_share": counts["failed"] / total if total else float("nan")}


def _clients(env, image: bytes, seconds: float, hang: bool) -> dict:
    """4 clients through the gateway for `seconds` (the platform's client: one retry of UNAVAILABLE);
    with `hang`, the first serving process is stopped (SIGSTOP) at the start."""
    from serving.client import ServingClientError

    latencies, failed, lock = [], [0], threading.Lock()
    if hang:
        os.kill(_status(env)["serving"]["pid"], signal.SIGSTOP)
    stop = time.monotonic() + seconds

    def client_loop() -> None:
        with _gateway_client(env, timeout=60) as client:
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    client.predict_images([image], model="mura_binary")
                except ServingClientError:
                    with lock:
                        failed[0] += 1
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "answered": len(latencies),
        "failed": failed[0],
        "worst_latency_s": max(latencies, default=float("nan")),
        "median_latency_s": statistics.median(latencies) if latencies else float("nan"),
    }


def _hung(env, image: bytes, seconds: float) -> dict:
    """Both replicas, then the first one hung: the load, and the time until it serves again."""
    both = _clients(env, image, seconds, hang=False)
    pid = _status(env)["serving"]["pid"]
    stopped = time.perf_counter()
    one_hung = _clients(env, image, seconds, hang=True)
    serving_again = _first_answer(env["MURA_SERVING_GRPC"], image, stopped)
    _wait_healthy(env, "serving", pid)
    return {"both_running": both, "first_hung": one_hung, "hung_to_serving_again_s": serving_again}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--random-kills", type=int, default=20)
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--hang-seconds", type=float, default=20.0)
    parser.add_argument("--hang-only", action="store_true", help="measure (4) alone")
    args = parser.parse_args()
    if args.hang_only:
        args.kills, args.random_kills = 0, 0

    from serving.samples import sample_png
    from tests.support import mura, platform_env

    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as folder:
        home = Path(folder) / "home"
        from mura_core.ports import free_ports

        gateway_grpc, gateway_rest = free_ports(2)
        env = platform_env(
            ROOT,
            home,
            MURA_SERVING_TOKEN="bench-token",
            MURA_GATEWAY_GRPC=f"127.0.0.1:{gateway_grpc}",
            MURA_GATEWAY_REST=f"127.0.0.1:{gateway_rest}",
        )
        _publish_tiny_model(home / "serving" / "models")  # served from the first start
        mura(env, "up", "--json", timeout=600)
        try:
            env["MURA_SERVING_TLS_CA"] = str(home / "secrets" / "gateway" / "ca.crt")
            image = sample_png(64, 64)
            hung = _hung(env, image, args.hang_seconds)
            answers = [_time_to_answer(env, image) for _ in range(args.kills)]
            baseline = None if args.hang_only else _load(env, image, args.load_seconds, kill=False)
            killed = None if args.hang_only else _load(env, image, args.load_seconds, kill=True)
            names = list(_status(env))
            rng = random.Random(0)
            chosen = [rng.choice(names) for _ in range(args.random_kills)]
            back_s: dict[str, list[float]] = {}
            for name in chosen:
                pid = _status(env)[name]["pid"]
                os.kill(pid, signal.SIGKILL)
                back_s.setdefault(name, []).append(_wait_healthy(env, name, pid))
            restarts = {name: entry["restarts"] for name, entry in _status(env).items()}
        finally:
            mura(env, "down", "--json", check=False)
        time.sleep(2)
        from tests.support import processes_of

        left = processes_of(home)
    report = {
        "benchmark": "recovery",
        "hung_serving_process": hung,
        "serving_answers_again_s": {
            where: _summary([answer[where] for answer in answers]) for where in ("gateway", "killed_process")
        }
        if answers
        else None,
        "load_16_clients": {"no_kill": baseline, "serving_killed": killed},
        "random_kills": {
            "kills": len(chosen),
            "restarts_counted": restarts,
            "healthy_again_s": {name: _summary(seconds) for name, seconds in sorted(back_s.items())},
        },
        "processes_left_after_down": left,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / ("recovery-hang.json" if args.hang_only else "recovery.json")).write_text(text)
    return 0


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _publish_tiny_model(base: Path) -> None:
    """A tiny exported binary model on the stack's model base, served as mura_binary."""
    from mura_core import contracts
    from pipelines import export
    from serving import repository, samples

    images = [samples.sample_png(64, 64, seed=seed) for seed in range(2)]
    model = samples.tiny_keras_model("binary", (32, 32), seed=0)
    with tempfile.TemporaryDirectory() as scratch:
        saved = export.export_saved_model(
            model, contracts.class_map("binary", "tiny", (32, 32)), Path(scratch) / "x", images
        )
        repository.publish_version(saved, "mura_binary", base_path=base)
    repository.set_served_versions("mura_binary", [1], {"stable": 1}, base / "models.config", base)


if __name__ == "__main__":
    sys.exit(main())
