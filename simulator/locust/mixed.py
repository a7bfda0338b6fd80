"""Mixed load: barnstorm's dashboard users and the device fleet in one Locust run.

    BARNSTORM_FARMS=500 BARNSTORM_MQTT=mqtt://broker:1883 \\
        locust -f locustfiles/mixed.py --host http://127.0.0.1:8080

barnstorm's own :class:`DashboardUser` plus the fleet plugin (``simulator.locust.fleet``,
which registers its hooks when imported): the same plugin any other Locust suite adds
with ``-f their_users.py,locustfiles/fleet.py``.
"""

from __future__ import annotations

from simulator.locust import fleet
from simulator.locust.users import DashboardUser

__all__ = ["DashboardUser", "fleet"]
