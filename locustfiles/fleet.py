"""The device fleet as a Locust plugin, for any Locust suite: no users of its own.

    locust -f my_dashboards.py,locustfiles/fleet.py --host http://127.0.0.1:8080 \
        --barnstorm-farms 500 --barnstorm-mqtt mqtt://broker:1883

Importing ``simulator.locust.fleet`` (also possible from a suite's own locustfile) registers
the fleet's hooks: its child process, its results as request events, the Device fleet tab,
the ``--barnstorm-*`` options, the SLAs and barnstorm's HTML report.
"""

import simulator.locust.fleet  # noqa: F401
