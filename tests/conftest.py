"""Fixtures shared by the test modules."""
import pytest


@pytest.fixture
def no_work(monkeypatch):
    """Fail loudly if a candidate is chosen or called: errors must come before any work."""
    from convbench import choose, plans, registry

    def started(*args, **kwargs):
        raise AssertionError("work started before the input was rejected")

    plans.clear_cache()      # a cached plan holds its candidate's function already
    monkeypatch.setattr(choose, "ranked", started)
    monkeypatch.setattr(registry.Candidate, "function", started)
