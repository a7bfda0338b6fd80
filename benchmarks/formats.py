"""History in the three formats, for data teams: the same year of 12 farms (the same seed
and start) written as JSON lines (the baseline), as .jsonl.gz and as Parquet, each timed
as a whole command; the sizes, the wall times and the ratios against JSON lines. (That
`simulate stats` gives the same figures on all three is the tests' to hold, on shorter
histories: read whole, a year takes longer than writing it.)

    python -m benchmarks formats               # a year of 12 farms (several minutes)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FORMATS = ("jsonl", "jsonl.gz", "parquet")


def _write(out: Path, farms: int, days: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            *(sys.executable, "-m", "simulator", "--farms", str(farms)),
            *("--start", "2021-01-01", "--duration", f"{days}d", "--speed", "max"),
            *("--output", str(out), "--quiet"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def bench_formats(farms: int = 12, days: int = 365) -> list[dict[str, Any]]:
    """One row per compressed format: its size and time against JSON lines'."""
    with tempfile.TemporaryDirectory(prefix="barnstorm-formats-") as folder:
        seconds, sizes = {}, {}
        for name in FORMATS:
            out = Path(folder) / f"year.{name}"
            seconds[name] = _write(out, farms, days)
            sizes[name] = out.stat().st_size
            out.unlink()
    results = []
    for name in FORMATS[1:]:
        row = {
            "name": f"history-{name.replace('.', '-')}",
            "what": f"{days} days of {farms} farms as .{name}, against .jsonl of the same run",
            "barnstorm_seconds": round(seconds[name], 1),
            "barnstorm_bytes": sizes[name],
            "baseline": ".jsonl of the same seed and start",
            "baseline_seconds": round(seconds["jsonl"], 1),
            "baseline_bytes": sizes["jsonl"],
            "size_ratio": round(sizes["jsonl"] / sizes[name], 2),
            "time_ratio": round(seconds[name] / seconds["jsonl"], 2),
        }
        print(
            f"{row['name']}: {sizes[name] / 1e6:,.1f} MB in {seconds[name]:,.1f} s; "
            f".jsonl {sizes['jsonl'] / 1e6:,.1f} MB in {seconds['jsonl']:,.1f} s: "
            f"{row['size_ratio']}x smaller, {row['time_ratio']}x the time"
        )
        results.append(row)
    return results


if __name__ == "__main__":
    print(json.dumps(bench_formats(days=int(sys.argv[1]) if len(sys.argv) > 1 else 365)))
