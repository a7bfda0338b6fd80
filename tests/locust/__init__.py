"""Tests of simulator/locust/."""
