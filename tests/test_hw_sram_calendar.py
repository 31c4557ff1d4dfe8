"""BankCalendar's ring: growing (doubling) and releasing keep every reservation in place."""

import numpy as np
from hypothesis import given, settings, strategies as st

from axelsim.hw.sram import BankCalendar

op_st = st.tuples(st.booleans(), st.integers(0, 2), st.integers(0, 90))


@settings(max_examples=80, deadline=None)
@given(ops=st.lists(op_st, min_size=1, max_size=40), ports=st.integers(1, 2), busy=st.integers(1, 3))
def test_small_ring_answers_like_a_ring_that_never_wraps(ops, ports, busy):
    """A 4-slot ring (which wraps, grows and releases in pieces) reserves every request at the
    cycle a 4096-slot ring (which never wraps or grows here) does, releases included."""
    small = BankCalendar(3, ports, window=4, busy=[busy] * 3)
    large = BankCalendar(3, ports, window=4096, busy=[busy] * 3)
    floor = 0
    for release, bank, cycle in ops:
        if release:
            floor = max(floor, cycle)
            small.release_before(floor)
            large.release_before(floor)
        else:
            want = floor + cycle
            assert small.reserve_one(bank, want) == large.reserve_one(bank, want)
    assert small.window <= large.window
    arrive = np.sort(np.asarray([floor + c for _, _, c in ops], dtype=np.int64))
    banks = np.asarray([b for _, b, _ in ops], dtype=np.int64)
    got_small, waited_small = small.reserve_run(arrive, 1, floor, banks)
    got_large, waited_large = large.reserve_run(arrive, 1, floor, banks)
    assert np.array_equal(got_small, got_large) and waited_small == waited_large


run_st = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 12)), min_size=1, max_size=30)


@settings(max_examples=80, deadline=None)
@given(runs=st.lists(run_st, min_size=1, max_size=4), ports=st.integers(1, 2), busy=st.integers(1, 4),
       ii=st.integers(1, 3))
def test_in_order_ring_reserves_like_a_ring_that_never_wraps(runs, ports, busy, ii):
    """Bursts of one in-order unit (each burst from the unit's release, arrivals rising) get the
    same start cycles and waits from an `in_order` ring, which clears behind it and never
    grows past a few holds, as from a ring wide enough to keep every reservation."""
    small = BankCalendar(3, ports, window=4, busy=[busy] * 3, in_order=True)
    large = BankCalendar(3, ports, window=1 << 14, busy=[busy] * 3)
    free_at, offset = 0, 0
    for run in runs:
        gaps = np.asarray([gap for _, gap in run], dtype=np.int64)
        arrive = offset + np.cumsum(gaps)
        banks = np.asarray([bank for bank, _ in run], dtype=np.int64)
        got_small, waited_small = small.reserve_run(arrive, ii, free_at, banks)
        got_large, waited_large = large.reserve_run(arrive, ii, free_at, banks)
        assert np.array_equal(got_small, got_large) and waited_small == waited_large
        free_at = int(got_large[-1]) + ii
        offset = int(arrive[-1])
    assert small.window <= 4 * busy + 4 < large.window


def test_in_order_ring_clears_before_a_wait_reaches_round_it():
    """Hold 4 on one port: the ring is 16 cycles wide. The third access wants cycle 12, waits for
    the second's hold to end (15) and holds 15-18, whose slots are the first access's (cycles
    0-3, dead by then): the ring must clear them before, not see a conflict there."""
    small = BankCalendar(1, 1, window=4, busy=[4], in_order=True)
    large = BankCalendar(1, 1, window=1 << 10, busy=[4])
    arrive, banks = np.array([0, 11, 12], dtype=np.int64), np.zeros(3, dtype=np.int64)
    got, waited = small.reserve_run(arrive, 1, 0, banks)
    assert small.window == 16
    assert got.tolist() == large.reserve_run(arrive, 1, 0, banks)[0].tolist() == [0, 11, 15] and waited == 3
