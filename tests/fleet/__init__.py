"""Tests of simulator/fleet/."""
