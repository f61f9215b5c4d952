"""The embedded stack's services under supervisord: restarted when they die, stopped as whole process
groups, their logs rotated, their state read from the supervisor rather than from pid files.

`mura up` writes `$MURA_HOME/run/supervisord.conf` (one program per service, not started by itself:
`up` starts them in order and waits for each one's health), starts supervisord as a daemon with the
stack's environment and talks to it over a unix socket only its user can open (0700). A program that
exits unexpectedly is started again at once (backoff when it keeps failing to start); the event
listener `pipelines.stack.reaper` first kills what the dead process left behind in its process group
(MLflow's server workers, the scheduler's task processes), so the new one finds its port free.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.stack.processes import PRIVATE_UMASK, StackError, alive

CONFIG = "supervisord.conf"
SOCKET = "supervisor.sock"
PID_FILE = "supervisord.pid"
RESTARTS = "restarts.json"  # program -> unexpected exits since `mura up` (written by the reaper)
STOP_SECONDS = 20  # SIGTERM, then SIGKILL to the whole group
LOG_BYTES = "20MB"
LOG_BACKUPS = 3


@dataclass(frozen=True)
class Program:
    """One supervised service: its command, the environment it adds and where it runs."""

    name: str
    command: list[str]
    directory: str
    environment: dict[str, str] = field(default_factory=dict)


def _escaped(text: str) -> str:
    """supervisord expands %(name)s in its values: a literal % is written %%."""
    return text.replace("%", "%%")


def _environment_line(environment: dict[str, str]) -> str:
    for key, value in environment.items():
        if '"' in value or "\n" in value:
            raise StackError(f"environment value of {key} holds a quote or a newline: not supported")
    return ",".join(f'{key}="{_escaped(value)}"' for key, value in sorted(environment.items()))


def write_config(run_dir: Path, log_dir: Path, programs: list[Program]) -> Path:
    """supervisord.conf for `programs` (mode 0600: it may name secrets the services need)."""
    from mura_core.private_files import write_private

    socket = run_dir / SOCKET
    lines = [
        "[unix_http_server]",
        f"file={_escaped(str(socket))}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_escaped(str(log_dir / 'supervisord.log'))}",
        f"logfile_maxbytes={LOG_BYTES}",
        f"logfile_backups={LOG_BACKUPS}",
        f"pidfile={_escaped(str(run_dir / PID_FILE))}",
        f"childlogdir={_escaped(str(log_dir))}",
        "umask=077",
        "identifier=mura",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_escaped(str(socket))}",
        "",
        "[eventlistener:reaper]",
        f"command={_escaped(shlex.join([sys.executable, '-m', 'pipelines.stack.reaper', str(run_dir)]))}",
        "events=PROCESS_STATE_RUNNING,PROCESS_STATE_EXITED,PROCESS_STATE_STOPPED,TICK_5",
        "autorestart=true",
        "stdout_logfile=NONE",  # its stdout is the event protocol, not a log
        f"stderr_logfile={_escaped(str(log_dir / 'reaper.log'))}",
        f"stderr_logfile_maxbytes={LOG_BYTES}",
        "",
    ]
    for order, program in enumerate(programs):
        lines += [
            f"[program:{program.name}]",
            f"priority={100 + 10 * order}",  # stopAllProcesses stops the highest first: Airflow, then MLflow
            f"command={_escaped(shlex.join(program.command))}",
            f"directory={_escaped(program.directory)}",
            "autostart=false",  # `up` starts them in order, each once the one before is healthy
            "autorestart=true",  # a service never exits by itself: whatever the exit, start it again
            "startsecs=3",
            "startretries=5",  # then FATAL: `mura status` says so and where the log is
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_SECONDS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_escaped(str(log_dir / f'{program.name}.log'))}",
            f"stdout_logfile_maxbytes={LOG_BYTES}",
            f"stdout_logfile_backups={LOG_BACKUPS}",
        ]
        if program.environment:
            lines.append(f"environment={_environment_line(program.environment)}")
        lines.append("")
    return write_private(run_dir / CONFIG, "\n".join(lines))


def connect(run_dir: Path):
    """The supervisor's XML-RPC interface over its unix socket."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{run_dir / SOCKET}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def is_running(run_dir: Path) -> bool:
    """True when this home's supervisord answers on its socket."""
    if not (run_dir / SOCKET).exists():
        return False
    try:
        return connect(run_dir).getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        return False


def start_daemon(run_dir: Path, log_dir: Path, environment: dict[str, str], timeout: float = 30.0) -> None:
    """Start supervisord with `environment` (what every program inherits); return once it answers."""
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (run_dir / SOCKET).unlink(missing_ok=True)  # a socket a killed supervisord left behind
    command = [sys.executable, "-m", "supervisor.supervisord", "-c", str(run_dir / CONFIG)]
    done = subprocess.run(
        command,
        env=environment,
        cwd=environment.get("MURA_REPO_ROOT"),
        capture_output=True,
        text=True,
        check=False,
        umask=PRIVATE_UMASK,
    )
    if done.returncode != 0:  # it daemonizes: the first process exits 0 once the daemon is forked
        raise StackError(f"supervisord did not start: {(done.stderr or done.stdout).strip()[-500:]}")
    deadline = time.monotonic() + timeout
    while not is_running(run_dir):
        if time.monotonic() > deadline:
            raise StackError(
                f"supervisord did not answer within {timeout:.0f} s; see {log_dir / 'supervisord.log'}"
            )
        time.sleep(0.2)


def apply_config(run_dir: Path) -> None:
    """Make the running supervisord read the config again: new programs added, changed ones replaced
    (stopped first), removed ones stopped and dropped."""
    server = connect(run_dir)
    added, changed, removed = server.reloadConfig()[0]
    for name in removed + changed:
        try:
            server.stopProcessGroup(name)
        except xmlrpc.client.Fault:
            pass
        server.removeProcessGroup(name)
    for name in changed + added:
        server.addProcessGroup(name)


def start_program(run_dir: Path, name: str, wait: bool = True) -> None:
    """Start one program (no-op when it runs); with `wait`, return once it has run for startsecs or
    raise StackError when it cannot start."""
    try:
        connect(run_dir).startProcess(name, wait)
    except xmlrpc.client.Fault as fault:
        if "ALREADY_STARTED" in fault.faultString:
            return
        raise StackError(f"{name} did not start ({fault.faultString}); see its log") from None


def stop_program(run_dir: Path, name: str) -> bool:
    """Stop one program and its process group; False when it was not running."""
    try:
        connect(run_dir).stopProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if "NOT_RUNNING" in fault.faultString or "BAD_NAME" in fault.faultString:
            return False
        raise
    return True


def programs_info(run_dir: Path) -> dict[str, dict]:
    """Each program's state as the supervisor knows it: state, pid, uptime (s), restarts."""
    import json

    if not is_running(run_dir):
        return {}
    restarts_file = run_dir / RESTARTS
    restarts = json.loads(restarts_file.read_text()) if restarts_file.is_file() else {}
    report = {}
    for info in connect(run_dir).getAllProcessInfo():
        if info["group"] == "reaper":
            continue
        running = info["statename"] == "RUNNING"
        report[info["name"]] = {
            "state": info["statename"],
            "pid": info["pid"] if running else None,
            "uptime_s": int(info["now"] - info["start"]) if running else 0,
            "restarts": int(restarts.get(info["name"], 0)),
        }
    return report


def shutdown(run_dir: Path, timeout: float = 60.0) -> list[str]:
    """Stop every program (each as a group), then supervisord itself; the programs that ran."""
    if not is_running(run_dir):
        return []
    server = connect(run_dir)
    ran = [
        info["name"]
        for info in server.getAllProcessInfo()
        if info["statename"] in ("RUNNING", "STARTING", "BACKOFF") and info["group"] != "reaper"
    ]
    server.stopAllProcesses(True)
    pid_text = (run_dir / PID_FILE).read_text().strip() if (run_dir / PID_FILE).is_file() else ""
    server.shutdown()
    deadline = time.monotonic() + timeout
    while pid_text and alive(int(pid_text)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return ran
