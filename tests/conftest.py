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


@pytest.fixture(autouse=True)
def fresh_plans():
    """Each test plans afresh: a plan cached by an earlier test holds the candidate
    function it resolved then (tests that patch a candidate module expect their patch)."""
    from convbench import plans

    plans.clear_cache()
