"""Dashboard users alone: people browsing the farms' dashboards.

    locust -f locustfiles/dashboard.py --host http://127.0.0.1:8080

The users live in ``simulator.locust.users``; this file only hands them to Locust.
"""

from simulator.locust.users import DashboardUser

__all__ = ["DashboardUser"]
