"""Fake ``sglang_router`` for tests (see tests/fakes/serve_fakes.py)."""
