"""Maintenance tools for the MiniRay tutorial: stage bookkeeping, exercises, the test runner.

Run them from the repository root as modules:

    python -m tools.stages sync|check
    python -m tools.exercises workspace|test|check ...
    python -m tools.run_tests [--stage N]

`tools.stages` (the model in `stage_model`, generated files in `sync`, diffs in `diffs`) and
`tools.exercises` (stubbing in `stubs`, workspaces in `workspaces`) are the modules to import
from.  `tools.doc_blocks` runs the documentation's Python for ``tests/meta/test_docs.py``.
They use only the standard library.
"""
