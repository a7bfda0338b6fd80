"""The exit codes of ``simulate``, one place for the CLI, the runner, the verdicts and the
Locust side.
"""

from __future__ import annotations

EXIT_OK = 0


EXIT_FAILED = 1


EXIT_USAGE = 2


EXIT_LOSS = 4


EXIT_INTERRUPTED = 130


EXIT_SLA = 3
