"""The fleet: farm templates and device profiles loaded and validated, the farms, rooms
and devices built from one seed, their topics, credentials and listings.
"""
