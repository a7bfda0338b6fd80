"""Tests of simulator/report/."""
