"""Benchmarks, each printed as barnstorm's figure, a baseline measured in the same run, and the
ratio between them (these machines are noisy: absolute times mean little, ratios travel).
Every target is started here on 127.0.0.1 (a private Mosquitto, the reference backend).

    python -m benchmarks                 # all of the ones below but history and soak (~20 min)
    python -m benchmarks publish-qos0    # per CPU-second, vs. a paho loop and Locust's MQTT user
    python -m benchmarks publish-qos1
    python -m benchmarks mqtt5           # MQTT 5 vs. 3.1.1, barnstorm's client (gmqtt beside)
    python -m benchmarks verify          # what --verify's observer costs a run
    python -m benchmarks connections     # 50,000 devices publishing every 10 s: memory, CPU
    python -m benchmarks fleet           # build 500 and 5,000 farms: time and memory
    python -m benchmarks engine          # generate and encode messages as fast as possible
    python -m benchmarks history-core    # history to a file on one core
    python -m benchmarks http            # HTTP ingest: aiohttp vs. httpx; wrk on the endpoint
    python -m benchmarks loop-lag        # the rate one process publishes at under 5 ms of loop lag
    python -m benchmarks scaling         # the same fleet on 1 and on N processes
    python -m benchmarks bridge          # the same fleet standalone and through Locust
    python -m benchmarks bridge-file
    python -m benchmarks history         # a year of 12 farms as history (about 4 minutes)
    python -m benchmarks formats         # that year as .jsonl, .jsonl.gz and Parquet: size, time
    python -m benchmarks soak            # the simulator's memory over a 10-minute soak
    python -m benchmarks gate            # the regression gate's false alarms and power, simulated
    python -m benchmarks same-build      # six 2-minute mixed runs of one build compared (~15 min)
    python -m benchmarks traces          # the trace receiver's CPU share of a mixed run
    python -m benchmarks all --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bridge import bench_bridge, bench_soak
from .common import compile_package
from .connections import bench_connections
from .formats import bench_formats
from .gate import bench_gate
from .generation import bench_engine, bench_fleet_sizes, bench_history, bench_history_core
from .httpingest import bench_http
from .looplag import bench_loop_lag
from .mqtt5 import bench_mqtt5
from .publish import bench_publish
from .same_build import bench_same_build
from .scaling import bench_scaling
from .traces import bench_traces
from .verify import bench_verify

Result = dict[str, Any]
BENCHMARKS: dict[str, Callable[[], Result | list[Result]]] = {
    "publish-qos0": lambda: bench_publish(qos=0),
    "publish-qos1": lambda: bench_publish(qos=1),
    "mqtt5": bench_mqtt5,
    "verify": bench_verify,
    "connections": bench_connections,
    "fleet": bench_fleet_sizes,
    "engine": bench_engine,
    "history-core": bench_history_core,
    "http": bench_http,
    "loop-lag": bench_loop_lag,
    "scaling": bench_scaling,
    "bridge": bench_bridge,
    "bridge-file": lambda: bench_bridge(target="file", duration="2d"),
    "history": bench_history,
    "formats": bench_formats,
    "soak": bench_soak,
    "gate": bench_gate,
    "same-build": bench_same_build,
    "traces": bench_traces,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "which", nargs="*", help=f"all (default) or any of: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    # "all" is the quick ones; the year-long history, the soak, the runs of one build and
    # the minute-long mixed run with traces are asked for by name.
    quick = [
        name
        for name in BENCHMARKS
        if name not in ("history", "formats", "soak", "same-build", "traces")
    ]
    names = quick if not args.which or "all" in args.which else args.which
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (known: all, {', '.join(BENCHMARKS)})")
    machine = {
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"machine: {machine}")
    compile_package()
    results: list[Result] = []
    for name in names:
        produced = BENCHMARKS[name]()
        for result in produced if isinstance(produced, list) else [produced]:
            results.append(result)
            print(f"{result['name']}: {result['what']}")
            for key, value in result.items():
                if key not in ("name", "what"):
                    print(f"  {key}: {value}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
