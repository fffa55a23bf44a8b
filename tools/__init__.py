"""Maintenance tools for the MiniRay tutorial: stage bookkeeping, exercises, the test runner.

Run them from the repository root as modules:

    python -m tools.stages sync|check
    python -m tools.exercises workspace|test|check ...
    python -m tools.run_tests [--stage N]

They use only the standard library.
"""
