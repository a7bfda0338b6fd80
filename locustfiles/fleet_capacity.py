"""A capacity search over any Locust suite's users: the device fleet plugin plus
barnstorm's step-load shape, no users of its own.

    BARNSTORM_CAPACITY='{"steps": 5, "step_seconds": 60, ...}' \
        locust -f my_dashboards.py,locustfiles/fleet_capacity.py --headless --host ...

``simulate capacity`` writes ``BARNSTORM_CAPACITY`` for its own users; see
``simulator.locust.capacity`` for its keys.
"""

from simulator.locust.capacity import CapacityShape

__all__ = ["CapacityShape"]
