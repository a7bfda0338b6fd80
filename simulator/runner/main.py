"""The one entry the CLI calls: a run (or its shards) in a fresh event loop, stopped
cleanly by Ctrl-C or SIGTERM, with the end-of-run summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable

from rich.console import Console

from simulator.report.summary import print_summary
from simulator.report.tables import log_console
from simulator.runner.config import RunConfig, RunResult
from simulator.runner.run import Run
from simulator.runner.shards import run_parallel, run_sharded

log = logging.getLogger(__name__)


def _summary_console(config: RunConfig) -> Console:
    """Where the end-of-run summary goes: stdout, or stderr when stdout carries the
    streamed results; as wide as the terminal, or as a CI log (80, or ``COLUMNS``)."""
    return log_console(sys.stderr if config.outputs.stream_results else sys.stdout)


def run_blocking(
    config: RunConfig, *, summary: bool = True, on_start: Callable[[Run], None] | None = None
) -> RunResult:
    """Run ``config`` in a fresh event loop; Ctrl-C and SIGTERM stop it cleanly."""

    if config.processes > 1:
        history = config.target.output is not None and config.timing.speed is None
        result = run_sharded(config) if history else run_parallel(config)
        if summary:
            print_summary(result.report, _summary_console(config))
        return result

    async def main() -> RunResult:
        run = Run(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, run.request_stop)
        if on_start is not None:
            on_start(run)
        result = await run.execute()
        if summary:
            print_summary(result.report, _summary_console(config))
        return result

    return asyncio.run(main())
