"""Tests of core/tooling/."""
