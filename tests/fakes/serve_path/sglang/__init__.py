"""Fake ``sglang`` for tests: only ``python -m sglang.launch_server`` (see tests/fakes/serve_fakes.py)."""
