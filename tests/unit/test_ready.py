"""How often readiness knocks: often while a start is nearly done, rarely while it is slow."""

from __future__ import annotations

from provisioner.postgres.ready import MAX_POLL_INTERVAL, POLL_INTERVAL, poll_interval


def test_a_quick_start_is_polled_every_few_milliseconds() -> None:
    assert poll_interval(0.0) == POLL_INTERVAL
    assert poll_interval(0.06) == POLL_INTERVAL  # a warm start's wait


def test_a_slow_start_is_polled_less_often_the_longer_it_takes() -> None:
    waits = (0.1, 0.5, 1.0, 2.0)
    pauses = [poll_interval(waited) for waited in waits]
    assert pauses == sorted(pauses) and len(set(pauses)) == 4
    assert all(pause <= waited * 0.05 for pause, waited in zip(pauses, waits, strict=True))
    assert poll_interval(60.0) == MAX_POLL_INTERVAL
