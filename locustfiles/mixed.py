"""Devices and dashboard users in one Locust run (what ``simulate mixed`` starts).

    locust -f locustfiles/mixed.py --host http://127.0.0.1:8080

Importing ``simulator.locust.mixed`` registers the fleet's event hooks (its child process,
the result stream, the Device fleet tab); this file only hands them to Locust.
"""

from simulator.locust.mixed import DashboardUser

__all__ = ["DashboardUser"]
