"""The reconnect schedule, as a pure function: no sleeping."""

from __future__ import annotations

import pytest

from worker_agent import backoff


def test_ceiling_doubles_from_a_tenth_of_a_second_to_a_five_second_cap() -> None:
    assert [backoff.ceiling(n) for n in range(8)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


@pytest.mark.parametrize("attempt", [0, 1, 3, 6, 50, 10_000])
def test_delay_stays_between_half_the_ceiling_and_the_ceiling(attempt: int) -> None:
    top = backoff.ceiling(attempt)
    assert backoff.delay(attempt, rand=0.0) == pytest.approx(top / 2)
    assert backoff.delay(attempt, rand=0.999999) == pytest.approx(top, rel=1e-5)
    assert top / 2 <= backoff.delay(attempt) <= top


def test_delay_never_exceeds_the_cap_even_after_a_long_outage() -> None:
    assert max(backoff.delay(n, rand=0.999999) for n in range(2000)) <= backoff.CAP_SECONDS


def test_jitter_spreads_agents_out() -> None:
    assert len({round(backoff.delay(5), 6) for _ in range(50)}) > 1
