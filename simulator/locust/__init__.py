"""The gevent side: dashboard users, the mixed run's fleet plugin, the capacity shape,
Locust statistics, dashboard maps and HAR conversion. Nothing on the asyncio side imports
it, and locustfiles/ are thin files over it.
"""
