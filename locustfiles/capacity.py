"""Capacity search: the mixed run with a step-load shape (what ``simulate capacity`` starts).

    locust -f locustfiles/capacity.py --host http://127.0.0.1:8080 --headless

The shape and its hooks live in ``simulator.locust.capacity``; this file only hands them
to Locust.
"""

from simulator.locust.capacity import CapacityShape, DashboardUser

__all__ = ["CapacityShape", "DashboardUser"]
