"""Tests of simulator/backend/."""
