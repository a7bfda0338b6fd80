"""Tests of simulator/metrics/."""
