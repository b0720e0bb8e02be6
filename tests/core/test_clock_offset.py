"""The clock offset from timed queries: the estimate, its error bound and the refusal threshold. No database."""

from datetime import UTC, datetime, timedelta

import pytest

from core.clock_offset import ClockOffset, ClockSample, adopted, describe, measured_offset, too_far

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def sample(sent: float, server: float, received: float) -> ClockSample:
    """Seconds after T0 on each clock."""
    return ClockSample(T0 + timedelta(seconds=sent), T0 + timedelta(seconds=server),
                       T0 + timedelta(seconds=received))


@pytest.mark.parametrize(("samples", "seconds", "error"), [
    ([sample(0, 0.001, 0.002)], 0.0, 0.001),  # in step: the server read its clock mid-way
    ([sample(30, 0.001, 30.002)], -30.0, 0.001),  # node 30 s ahead (faketime -f +30s)
    ([sample(0, 45.5, 1.0)], 45.0, 0.5),  # node 45 s behind, over a slow round trip
    ([sample(0, 10.0, 4.0), sample(5, 5.05, 5.1), sample(6, 8.0, 8.0)], 0.0, 0.05),  # shortest trip wins
    ([sample(1.0, 3.0, 0.9)], 2.05, 0.0),  # local clock stepped back mid-sample: no negative error
])
def test_offset_comes_from_the_sample_with_the_shortest_round_trip(samples, seconds, error):
    offset = measured_offset(samples)

    assert offset.seconds == pytest.approx(seconds, abs=1e-6)
    assert offset.error == pytest.approx(error, abs=1e-6)


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        measured_offset([])


@pytest.mark.parametrize(("seconds", "error", "limit", "refused"), [
    (0.0, 0.0, 2.0, False),
    (-30.0, 0.001, 2.0, True),  # ahead
    (30.0, 0.001, 2.0, True),  # behind
    (2.0, 0.0, 2.0, False),  # at the limit: allowed
    (2.5, 0.0, 2.0, True),
    (2.5, 0.6, 2.0, False),  # might be within the limit given the round trip: not refused
    (-2.5, 0.4, 2.0, True),  # beyond it even at the near edge of the bound
])
def test_a_clock_is_too_far_only_when_beyond_the_limit_at_the_edge_of_its_error(seconds, error, limit, refused):
    assert too_far(ClockOffset(seconds, error), limit) is refused


def test_description_says_which_way_and_how_sure():
    assert describe(ClockOffset(-30.0126, 0.0004)) == "30.013 s ahead of the database's (±0.000 s)"
    assert describe(ClockOffset(1.5, 0.25)) == "1.500 s behind the database's (±0.250 s)"


SHARP, OLD_SHARP, SLOW = ClockOffset(-0.2, 0.001), ClockOffset(0.0, 0.002), ClockOffset(4.0, 3.0)


@pytest.mark.parametrize(("previous", "new", "kept"), [
    (None, SLOW, SLOW),  # the first measurement is all there is
    (OLD_SHARP, SHARP, SHARP),  # a sharp one always replaces
    (OLD_SHARP, SLOW, OLD_SHARP),  # a stalled database does not move a well-measured clock by seconds
    (SLOW, ClockOffset(1.0, 2.0), ClockOffset(1.0, 2.0)),  # a slow one still beats a slower one
])
def test_a_slow_measurement_does_not_replace_a_sharper_one(previous, new, kept):
    assert adopted(previous, new, max_error=0.1) == kept
