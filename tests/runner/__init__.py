"""Tests of simulator/runner/."""
