"""Test helpers shared by the unit, trainer and end-to-end suites."""
