"""What every benchmark shares: measured child processes, a private broker, limits."""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIMULATE = [sys.executable, "-m", "simulator"]


def compile_package(tree: Path = ROOT) -> None:
    """Byte-compile ``tree``'s barnstorm package, as installing its wheel does: the
    benchmarks measure barnstorm as installed, not compiling its own sources at every
    start (which it would under PYTHONDONTWRITEBYTECODE from a source checkout, while the
    baselines' libraries were compiled when pip installed them)."""
    compileall.compile_dir(tree / "simulator", quiet=1)


@dataclass
class Measured:
    """A finished child process: its exit code, wall time, CPU time and peak memory."""

    returncode: int
    wall_s: float
    cpu_s: float  # user + system of the child (and of the children it waited for)
    max_rss_mb: float
    stdout: str
    stderr: str
    #: the highest resident memory of the process and all its descendants together,
    #: sampled every quarter second (ru_maxrss only knows the largest single one).
    peak_tree_mb: float = 0.0


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and every process below it, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    total = 0.0
    for pid in tree:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += rss_mb(pid)
    return total


def run_measured(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 600.0,
) -> Measured:
    """Run ``command`` to its end (killed after ``timeout`` seconds) and measure it with
    ``wait4``: the CPU seconds are the child's own, whatever else the machine does."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        deadline = started + timeout
        peak = 0.0
        sampled = 0.0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - sampled >= 0.25:
                sampled = time.perf_counter()
                with contextlib.suppress(OSError):
                    peak = max(peak, tree_rss_mb(process.pid))
            if time.perf_counter() > deadline:
                process.send_signal(signal.SIGINT)  # let it write its report
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
                process.kill()
            time.sleep(0.02)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            process.returncode,
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            max(peak, usage.ru_maxrss / 1024),
        )


def check(result: Measured, what: str) -> Measured:
    """``result`` if it succeeded, else a clear failure naming ``what``."""
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"benchmark: {what} exited {result.returncode}: " + " | ".join(tail))
    return result


def raise_open_files(wanted: int) -> int:
    """Raise this process's open-files limit towards ``wanted`` (children inherit it);
    returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else max(soft, min(wanted, hard))
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
        return target
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mb(pid: int) -> float:
    """Resident memory of a running process, from /proc."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_s(pid: int) -> float:
    """CPU seconds a running process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ratio(ours: float, baseline: float) -> float:
    return round(ours / baseline, 3) if baseline else float("inf")


def sample_payload(folder: Path, device_type: str) -> Path:
    """One real barnstorm payload of ``device_type``, written to a file in ``folder``: the
    constant that baselines send."""
    out = folder / "sample.jsonl"
    check(
        run_measured(
            [
                *SIMULATE,
                *("--farms", "1", "--output", str(out), "--speed", "max", "--duration", "1h"),
                *("--start", "2026-01-01", "--quiet", "--processes", "1"),
            ]
        ),
        "the sample payload",
    )
    for line in out.read_text().splitlines():
        record = json.loads(line)
        if record["payload"].get("device_type") == device_type:
            path = folder / f"{device_type}.json"
            path.write_bytes(json.dumps(record["payload"], separators=(",", ":")).encode())
            return path
    raise SystemExit(f"benchmark: no {device_type} payload in the sample")
