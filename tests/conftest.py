"""Fixtures shared by the test modules."""
import pytest


@pytest.fixture
def no_work(monkeypatch):
    """Fail loudly if a candidate is chosen or called: errors must come before any work."""
    import convbench.api
    from convbench import registry

    def started(*args, **kwargs):
        raise AssertionError("work started before the input was rejected")

    monkeypatch.setattr(convbench.api, "choose", started)
    monkeypatch.setattr(registry.Candidate, "function", started)
