"""The device engine: a clock, the due devices of each tick, their readings (numpy, per
profile), payload encoding and scenarios, handed to a transport. Pure asyncio; never
imports locust or gevent.
"""
