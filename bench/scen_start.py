"""Process start to ``STATUS=starting``: what every restart and upgrade of the daemon pays
before it does anything.

``polroutd run`` is started the way systemd starts it (``NOTIFY_SOCKET``, a configuration with
HTTP on) in a namespace of its own, and timed from just before the fork to the arrival of its
``STATUS=starting`` (sent just before the first reconcile) on the notify socket here; then it is
stopped with SIGTERM. The first start of each interpreter is a warm-up (it may write byte code)
and is not counted. Two interpreters are measured, alternately so that they share the machine's
drift: a venv that holds only the runtime dependencies (``build/bench-runtime-venv``, built
here from pyproject.toml's ``dependencies`` when missing or stale: what a deployment has) and the
interpreter running the bench (the dev venv, with every test tool beside). ``--quick`` measures
the current interpreter only. polroutd itself comes from this source tree in both (``python -m
polroutd`` run from it). Byte code is there as in a deployment (see :func:`daemon_env`).

Each interpreter also runs once with ``-X importtime``; the imports that completed before
``STATUS=starting`` arrived (the daemon writes each line before it sends the notification, and
the pipe is drained when the notification is seen) are summed, and the costliest printed.
Libraries the daemon defers until after its first reconcile (asyncio, structlog, aiohttp,
prometheus_client; argparse, which ``run`` does without) must not be among them: their presence
is reported.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from bench import PREFIX, BenchError
from bench.common import REPO, Context, Row, median, ms, percentile, summary
from polroutd.lab import netns
from polroutd.lab.daemon import polroutd_env

RUNTIME_VENV = REPO / "build" / "bench-runtime-venv"
TARGET_MS = 150.0
HTTP_PORT = 19661
# Libraries `polroutd run` loads only after its first reconcile (argparse: not at all).
DEFERRED = ("asyncio", "structlog", "aiohttp", "prometheus_client", "argparse")
TOP_IMPORTS = 12


class ImportLine(NamedTuple):
    """One line of ``-X importtime``: a module, its own and its cumulative time (µs), and its
    depth in the import tree (0: imported by the program itself)."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(text: str) -> list[ImportLine]:
    """The ``import time:`` lines of ``text`` (other output, such as log lines, is skipped)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header: "self [us] | cumulative | imported package"
        name = fields[2].rstrip()
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2
        lines.append(ImportLine(stripped, int(fields[0]), int(fields[1]), depth))
    return lines


def top_cumulative(lines: Sequence[ImportLine], count: int) -> list[ImportLine]:
    """The ``count`` costliest imports by cumulative time (a package and what it pulled in)."""
    return sorted(lines, key=lambda line: line.cumulative_us, reverse=True)[:count]


def total_us(lines: Sequence[ImportLine]) -> int:
    """Time spent importing: the cumulative times of the top-level imports."""
    return sum(line.cumulative_us for line in lines if line.depth == 0)


def deferred_loaded(lines: Sequence[ImportLine]) -> list[str]:
    """The deferred libraries among ``lines``."""
    return sorted({line.module.split(".")[0] for line in lines} & set(DEFERRED))


def runtime_dependencies(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """pyproject.toml's ``[project] dependencies``: what a deployment installs with polroutd."""
    with pyproject.open("rb") as f:
        deps: list[str] = tomllib.load(f)["project"]["dependencies"]
    return deps


def runtime_python(ctx: Context, venv: Path = RUNTIME_VENV) -> Path:
    """The runtime-only venv's interpreter, (re)built when missing or when the dependencies
    changed (a stamp holds their hash)."""
    deps = runtime_dependencies()
    digest = hashlib.sha256("\n".join(deps).encode()).hexdigest()
    stamp = venv / ".bench-dependencies"
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    ctx.say(f"  building {venv.relative_to(REPO)} with {', '.join(deps)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                   capture_output=True, timeout=300)
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          *deps], capture_output=True, text=True, timeout=900, check=False)
    if pip.returncode != 0:
        raise BenchError(f"pip install into {venv} failed: {pip.stderr.strip()[-800:]}")
    stamp.write_text(digest)
    return python


def write_config(path: Path, workdir: Path) -> Path:
    path.write_text(
        "[daemon]\n"
        f'http_listen = "127.0.0.1:{HTTP_PORT}"\n'
        f'rt_tables_file = "{workdir}/iproute2/rt_tables.d/polroutd.conf"\n'
    )
    return path


def daemon_env(directory: Path, notify_socket: Path) -> dict[str, str]:
    """The daemon's environment, with byte code as a deployment has it (pip and Debian compile
    at install time): written once, by the warm-up, into this run's own cache, whatever
    ``PYTHONDONTWRITEBYTECODE`` says (without it every start compiles polroutd again)."""
    env = polroutd_env({"NOTIFY_SOCKET": str(notify_socket),
                        "PYTHONPYCACHEPREFIX": str(directory / "pycache")})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _argv(python: Path, config: Path, *options: str) -> list[str]:
    return [str(python), *options, "-m", "polroutd", "run", "--config", str(config)]


class Start(NamedTuple):
    """One start, in seconds from just before the fork to the arrival of STATUS=starting: wall
    time, the process's time on a CPU and its time waiting for one (runnable, but other
    processes had the CPUs: wall time minus this is what it would take on an idle machine,
    near enough); and wall time to READY=1."""

    to_starting: float
    cpu_to_starting: float
    waiting_to_starting: float
    to_ready: float


def cpu_and_wait(pid: int) -> tuple[float, float]:
    """Seconds ``pid`` (its main thread) has run on a CPU and waited for one
    (/proc/PID/schedstat, in ns)."""
    fields = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(fields[0]) / 1e9, int(fields[1]) / 1e9


def start_once(spaces: netns.Namespaces, ns: str, python: Path, config: Path,
               directory: Path, timeout: float = 20.0) -> Start:
    """One ``polroutd run``, timed to STATUS=starting and READY=1 on the notify socket (read
    here, so the CPU time is taken the moment the notification arrives), then stopped."""
    path = directory / "start-notify.sock"
    path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    env = daemon_env(directory, path)
    log = directory / "start.log"
    starting: tuple[float, float, float] | None = None
    ready: float | None = None
    try:
        with log.open("w") as out:
            started = time.perf_counter()
            # ``ip netns exec`` execs: the child's pid is the daemon's.
            proc = spaces.popen(ns, *_argv(python, config), env=env, cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while ready is None and time.monotonic() < deadline and proc.poll() is None:
                readable, _, _ = select.select([notify], [], [], 0.1)
                if not readable:
                    continue
                message = notify.recv(4096)
                now = time.perf_counter()
                if starting is None and b"STATUS=starting" in message:
                    starting = (now, *cpu_and_wait(proc.pid))
                if b"READY=1" in message.splitlines():
                    ready = now
        finally:
            code = netns.stop_process(proc, 5.0)
        if starting is None or ready is None or code != 0:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-3:])
            raise BenchError(f"polroutd run ({python}) did not start and stop cleanly "
                             f"(exit {code}): {tail}")
        return Start(starting[0] - started, starting[1], starting[2], ready - started)
    finally:
        notify.close()
        path.unlink(missing_ok=True)


def imports_before_starting(spaces: netns.Namespaces, ns: str, python: Path, config: Path,
                            directory: Path, timeout: float = 30.0) -> list[ImportLine]:
    """The ``-X importtime`` lines the daemon wrote before its ``STATUS=starting`` arrived."""
    path = directory / "importtime-notify.sock"
    path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    env = daemon_env(directory, path)
    proc = spaces.popen(ns, *_argv(python, config, "-X", "importtime"), env=env, cwd=REPO,
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.fileno()
    os.set_blocking(err, False)
    chunks: list[bytes] = []

    def drain() -> bool:
        """Reads what the pipe holds; False at its end (the daemon exited)."""
        while True:
            try:
                chunk = os.read(err, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            chunks.append(chunk)

    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("no STATUS=starting under -X importtime")
            readable, _, _ = select.select([notify.fileno(), err], [], [], left)
            if err in readable and not drain():
                tail = b"".join(chunks).decode(errors="replace").strip().splitlines()[-3:]
                raise BenchError(f"polroutd run -X importtime exited: {' | '.join(tail)}")
            if notify.fileno() in readable and b"STATUS=starting" in notify.recv(4096):
                drain()  # everything written before the notification was sent
                return parse_importtime(b"".join(chunks).decode(errors="replace"))
    finally:
        netns.stop_process(proc, 5.0)
        proc.stderr.close()
        notify.close()
        path.unlink(missing_ok=True)


def interpreter_floor(spaces: netns.Namespaces, ns: str, python: Path, reps: int) -> float:
    """Median seconds of ``python -c pass`` there: the part of the start no import saves."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        spaces.run(ns, str(python), "-c", "pass", timeout=30)
        times.append(time.perf_counter() - started)
    return median(times)


def run(ctx: Context) -> None:
    interpreters: dict[str, Path] = {}
    if ctx.quick:
        ctx.say("  --quick: the current interpreter only (no runtime-only venv)")
        interpreters["this interpreter"] = Path(sys.executable)
    else:
        interpreters["runtime venv"] = runtime_python(ctx)
        interpreters["dev venv"] = Path(sys.executable)
    spaces = netns.Namespaces(PREFIX)
    ns = spaces.add("start")
    config = write_config(ctx.workdir / "start.toml", ctx.workdir)
    reps = ctx.n(15, 3)
    starts: dict[str, list[Start]] = {name: [] for name in interpreters}
    details: dict[str, Any] = {"reps": reps, "load_average_before": os.getloadavg(),
                               "interpreters": {}}
    try:
        for python in interpreters.values():  # warm-up: byte code written, caches filled
            start_once(spaces, ns, python, config, ctx.workdir)
        for _ in range(reps):
            for name, python in interpreters.items():
                starts[name].append(start_once(spaces, ns, python, config, ctx.workdir))
        details["load_average_after"] = os.getloadavg()
        for name, python in interpreters.items():
            imports = imports_before_starting(spaces, ns, python, config, ctx.workdir)
            floor = interpreter_floor(spaces, ns, python, ctx.n(5, 2))
            _report(ctx, name, python, starts[name], imports, floor, details)
    finally:
        netns.delete(ns)
    ctx.details["start"] = details


def _report(ctx: Context, name: str, python: Path, starts: list[Start],
            imports: list[ImportLine], floor: float, details: dict[str, Any]) -> None:
    wall = [s.to_starting for s in starts]
    cpu = [s.cpu_to_starting for s in starts]
    unqueued = [s.to_starting - s.waiting_to_starting for s in starts]
    ready = [s.to_ready for s in starts]
    value = ms(median(wall))
    judged = name == "runtime venv"
    ctx.add(Row("start", f"exec -> STATUS=starting, {name}, median", "ms", value,
                target=f"<= {TARGET_MS:.0f} ms" if judged else "",
                met=value <= TARGET_MS if judged else None))
    ctx.add(Row("start", f"exec -> STATUS=starting, {name}, p90", "ms", ms(percentile(wall, 90))))
    ctx.add(Row("start", f"CPU time to STATUS=starting, {name}, median", "ms", ms(median(cpu))))
    ctx.add(Row("start", f"exec -> STATUS=starting less run-queue wait, {name}, median", "ms",
                ms(median(unqueued))))
    ctx.add(Row("start", f"python -c pass, {name}, median", "ms", ms(floor)))
    loaded = deferred_loaded(imports)
    top = top_cumulative(imports, TOP_IMPORTS)
    ctx.say(f"  {name} ({python}): STATUS=starting after {value:.0f} ms (median of "
            f"{len(starts)}; CPU {ms(median(cpu)):.0f} ms; less run-queue wait "
            f"{ms(median(unqueued)):.0f} ms), READY=1 after "
            f"{ms(median(ready)):.0f} ms; imports before STATUS=starting: {len(imports)} "
            f"modules, {total_us(imports) / 1000:.0f} ms under -X importtime"
            + (f"; DEFERRED LIBRARIES LOADED: {loaded}" if loaded else ""))
    for line in top:
        ctx.say(f"    {line.cumulative_us / 1000:7.1f} ms  {'  ' * line.depth}{line.module}")
    details["interpreters"][name] = {
        "python": str(python),
        "to_starting_seconds": summary(wall),
        "cpu_to_starting_seconds": summary(cpu),
        "to_starting_less_runqueue_wait_seconds": summary(unqueued),
        "to_ready_seconds": summary(ready),
        "python_c_pass_seconds": floor,
        "imports_before_starting": len(imports),
        "import_seconds_before_starting": total_us(imports) / 1e6,
        "deferred_libraries_loaded_before_starting": loaded,
        "top_cumulative_imports": [
            {"module": line.module, "depth": line.depth, "cumulative_seconds":
             line.cumulative_us / 1e6, "self_seconds": line.self_us / 1e6} for line in top],
    }
