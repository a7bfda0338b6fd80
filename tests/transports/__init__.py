"""Tests of simulator/transports/."""
