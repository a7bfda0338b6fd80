"""Tests of simulator/models/."""
