"""The exit codes of ``simulate``, one place for the CLI, the runner, the verdicts and the
Locust side. A CI job can rely on them: anything but 0 means the run did not show what it
had to show (the README has the table).
"""

from __future__ import annotations

#: the run completed, the target accepted what was sent, and every verdict held.
EXIT_OK = 0
#: the run failed (unreachable target, refused login, a defect), or nothing got through:
#: nothing was sent, the target accepted none of it, or the read-back failed.
EXIT_FAILED = 1
#: bad input: a flag, a file, a key.
EXIT_USAGE = 2
#: an SLA broke.
EXIT_SLA = 3
#: the target accepted messages it then did not store (read-back).
EXIT_LOSS = 4
#: more messages failed than --max-failed allows (default 1 %).
EXIT_FAILURES = 5
#: interrupted (Ctrl-C or SIGTERM); the report of what was measured is still written.
EXIT_INTERRUPTED = 130
