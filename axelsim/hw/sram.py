"""The index SRAM: banks of rows holding packed indices and FP16 norms, and its port calendars.

Row layout (docs/architecture.md): index i at bits [i*b, (i+1)*b), little-endian, then the 16
bits of the FP16 norm; bit k of the row is bit k%8 of byte k//8. The baselines store FP16
vectors instead. Rows are packed and unpacked by axelsim.hw.kernels (pack_stage, unpack_stage). Addresses come from `sram.mapping`; a trace needing more
rows than a bank holds is rejected (ConfigError) or its excess rows are spilled off-macro and
counted as `offchip` accesses, never wrapped.
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
from numba.core import sigutils

from axelsim.config.macro import MacroConfig
from axelsim.errors import ConfigError


class AddressMap:
    """(layer slot, kv head, token, K/V) -> (bank, row within bank), per `sram.mapping`.

    token_interleaved: bank = token % banks, row = (stream * 2 + kv) * ceil(T / banks) + token // banks
    head_per_bank:     bank = stream % banks, row = ((stream // banks) * 2 + kv) * T + token
    with stream = layer_slot * kv_heads + head and kv = 0 for keys, 1 for values.
    """

    def __init__(self, macro: MacroConfig, n_layers: int, kv_heads: int, tokens: int, source: str):
        self.banks = macro.sram.banks
        self.mapping = macro.sram.mapping
        self.kv_heads = kv_heads
        self.tokens = tokens
        streams = n_layers * kv_heads
        if self.mapping == "token_interleaved":
            self.rows_needed = streams * 2 * (-(-tokens // self.banks))
        else:
            self.rows_needed = (-(-streams // self.banks)) * 2 * tokens
        self.rows_per_bank = macro.sram.rows_per_bank
        if self.rows_needed > self.rows_per_bank and macro.sram.overflow == "reject":
            raise ConfigError(source, "sram.rows_per_bank",
                              f"at least {self.rows_needed} rows per bank for this trace "
                              f"({n_layers} layers x {kv_heads} KV heads x {tokens} tokens x K,V over "
                              f"{self.banks} banks), got {self.rows_per_bank} (or set sram.overflow: spill)")

    def locate(self, layer_slot: int, head, token, kv: int) -> tuple[np.ndarray, np.ndarray]:
        """Bank and row-in-bank arrays for the given heads/tokens (broadcast), kv 0 = K, 1 = V."""
        stream = layer_slot * self.kv_heads + np.asarray(head, dtype=np.int64)
        token = np.asarray(token, dtype=np.int64)
        if self.mapping == "token_interleaved":
            per = -(-self.tokens // self.banks)
            bank, row = token % self.banks, (stream * 2 + kv) * per + token // self.banks
        else:
            bank, row = stream % self.banks, ((stream // self.banks) * 2 + kv) * self.tokens + token
        bank, row = np.broadcast_arrays(bank, row)
        return bank.astype(np.int64), row.astype(np.int64)

    def flat(self, bank: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Storage index of (bank, row)."""
        return bank * self.rows_needed + row


def unpack_index_rows(rows: np.ndarray, d: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices [n, d] int64 and FP16 norms [n] (float64 values) from packed rows."""
    n = rows.shape[0]
    row_bits = np.unpackbits(rows, axis=1, bitorder="little")
    idx_bits = row_bits[:, :d * bits].reshape(n, d, bits).astype(np.int64)
    idx = (idx_bits << np.arange(bits, dtype=np.int64)).sum(axis=2)
    norm_bits = row_bits[:, d * bits:d * bits + 16].astype(np.uint16)
    norm_word = (norm_bits << np.arange(16, dtype=np.uint16)).sum(axis=1).astype(np.uint16)
    return idx, norm_word.view(np.float16).astype(np.float64)


class IndexSram:
    """Row storage of all banks (rows beyond rows_per_bank are the spilled, off-macro part)."""

    def __init__(self, amap: AddressMap, row_bits: int):
        self.amap = amap
        self.row_bits = row_bits
        self.row_bytes = -(-row_bits // 8)
        self.rows = np.zeros((amap.banks * amap.rows_needed, self.row_bytes), dtype=np.uint8)

    def write(self, bank: np.ndarray, row: np.ndarray, data: np.ndarray) -> int:
        """Store rows; returns how many of them were spilled off-macro."""
        self.rows[self.amap.flat(bank, row)] = data
        return int(np.count_nonzero(row >= self.amap.rows_per_bank))

    def read(self, bank: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, int]:
        """Rows [n, row_bytes] and how many came from the spilled part."""
        return self.rows[self.amap.flat(bank, row)], int(np.count_nonzero(row >= self.amap.rows_per_bank))

    def flip_bit(self, bank: int, row: int, bit: int) -> None:
        """Fault injection for tests: invert one stored bit."""
        self.rows[self.amap.flat(np.int64(bank), np.int64(row)), bit // 8] ^= np.uint8(1 << (bit % 8))


@numba.njit(cache=True, nogil=True)
def _free(cal, mask, row, t, busy):
    for k in range(busy):
        if cal[row, (t + k) & mask] != 0:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _take(cal, mask, row, t, busy):
    for k in range(busy):
        cal[row, (t + k) & mask] = 1


@numba.njit(cache=True, nogil=True)
def _reserve_one(cal, mask, ports, bank, want, hold):
    t = want
    while True:
        for p in range(ports):
            if _free(cal, mask, bank * ports + p, t, hold):
                _take(cal, mask, bank * ports + p, t, hold)
                return t
        t += 1


@numba.njit(cache=True, nogil=True)
def _reserve_run(cal, mask, ports, arrive, ii, free_at, bank_ids, busy, out, base, in_order):
    """Reserve a run of accesses in order (each at or after the previous one's start + ii);
    returns the cycles waited and the ring's base. `in_order` (BankCalendar): no request ever
    precedes an earlier request's earliest cycle, so the cycles below an access's earliest one
    are dead: when its reservation might reach past the ring (an access waits less than the
    longest hold, then holds at most that long), the cycles from `base` up to its earliest one
    are cleared, one sweep a row, and `base` moves there. The ring then holds only the
    reservations still ahead (a width of 2 x the longest hold suffices)."""
    rows = cal.shape[0]
    width = mask + 1
    reach = 2 * busy.max()
    prev = free_at - ii
    waited = 0
    for i in range(arrive.size):
        want = max(arrive[i], prev + ii)
        if in_order and want + reach > base + width:
            span = min(want - base, width)
            for r in range(rows):
                for c in range(base, base + span):
                    cal[r, c & mask] = 0
            base = want
        bank = bank_ids[i]
        t = _reserve_one(cal, mask, ports, bank, want, busy[bank])
        waited += t - want
        out[i] = t
        prev = t
    return waited, base


def _entry_point(kernel, signature: str):
    """The compiled entry point of `kernel` for `signature` (skips the dispatcher's per-call
    type resolution; callers pass exactly these types), else the dispatcher itself."""
    try:
        args, _ = sigutils.normalize_signature(signature)
        kernel.compile(signature)
        return kernel.overloads[tuple(args)].entry_point
    except Exception:  # noqa: BLE001 - the dispatcher is always correct
        return kernel


@cache
def _reserve_one_entry():
    """Key mode reserves one access at a time: the compiled call without the dispatcher
    (compiled or loaded on first use, so a burst run never compiles it)."""
    return _entry_point(_reserve_one, "int64(uint8[:, ::1], int64, int64, int64, int64, int64)")


def _ring_runs(first: int, count: int, width: int) -> list[tuple[int, int]]:
    """The slots of cycles first..first+count-1 (count <= width, a power of two) in a ring of
    `width` slots, as at most two [lo, hi) slices in cycle order."""
    lo = first & (width - 1)
    if lo + count <= width:
        return [(lo, lo + count)]
    return [(lo, width), (0, lo + count - width)]


class BankCalendar:
    """Occupancy of every port of every bank over a sliding window of cycles (one kind of port).

    An access occupies one port of its bank for `busy[bank]` consecutive cycles (the bank's
    initiation interval, `sram.bank_ii_cycles`; the data arrives `latency` cycles after the
    access starts). `busy` has one entry per bank; bank index `banks - 1` may stand for the
    off-chip channel of spilled rows (its own busy time). Two requests to one bank in one cycle with one port: the later
    reserved (the younger stream, in program order) waits for the next free cycle. Streams
    reserve in program order, which equals a per-cycle arbiter giving the older stream priority.

    Memory: a ring of `window` cycles (a power of two) starting at `base`; the controller calls
    `release_before(cycle)` with a cycle no future request precedes, so the ring spans only the
    reservations still reachable (about one job), not the whole run. A request below `base` is
    an internal fault (RuntimeError), never a silent wrap.

    `in_order`: every request starts at or after the earliest cycle of the request before it
    (one unit issuing in program order, as the index SRAM's single write-port user does). A
    burst then releases as it goes (`_reserve_run`), so its ring stays a few holds
    wide however long the burst: a 4096-token prefill's write burst otherwise needs a ring
    spanning all its cycles (8 M cycles x 17 rows = 136 MiB on the 8B slice). Reservations are
    the same either way (tests/test_hw_sram_calendar.py).
    """

    def __init__(self, banks: int, ports: int, window: int = 1024, busy=None, in_order: bool = False):
        self.banks = banks
        self.ports = ports
        self.busy = np.ones(banks, dtype=np.int64) if busy is None else np.asarray(busy, dtype=np.int64)
        self.hold_max = int(self.busy.max())
        self.busy_list = self.busy.tolist()
        self.cal = np.zeros((banks * ports, window), dtype=np.uint8)
        self.base = 0
        self.horizon_used = 0
        self.in_order = in_order
        self._reserve_one = None

    @property
    def window(self) -> int:
        return self.cal.shape[1]

    def _ensure(self, until: int) -> None:
        """Grow the ring (doubling) until it covers cycles [base, until]."""
        width = self.window
        if until - self.base < width:
            return
        while until - self.base >= width:
            width *= 2
        grown = np.zeros((self.cal.shape[0], width), dtype=np.uint8)
        # cycles base..base+window-1 in cycle order, placed at their slots of the wider ring
        in_order = np.roll(self.cal, -(self.base & (self.window - 1)), axis=1)
        for lo, hi in _ring_runs(self.base, self.window, width):
            grown[:, lo:hi] = in_order[:, :hi - lo]
            in_order = in_order[:, hi - lo:]
        self.cal = grown

    def _check(self, cycle: int) -> None:
        if cycle < self.base:
            raise RuntimeError(f"bank calendar: request at cycle {cycle} below the released horizon {self.base}")

    def release_before(self, cycle: int) -> None:
        """Clear every reservation before `cycle` (no future request may ask for one)."""
        if cycle <= self.base:
            return
        width = self.window
        if cycle - self.base >= width:
            self.cal[:] = 0
        else:
            for lo, hi in _ring_runs(self.base, cycle - self.base, width):
                self.cal[:, lo:hi] = 0
        self.base = cycle
        self.horizon_used = max(self.horizon_used, cycle)

    def reserve_run(self, arrive: np.ndarray, ii: int, free_at: int, bank_ids: np.ndarray) -> tuple[np.ndarray, int]:
        """In-order reservation of a run of accesses; returns start cycles and cycles waited."""
        n = arrive.size
        out = np.empty(n, dtype=np.int64)
        if n == 0:
            return out, 0
        first = max(int(arrive[0]), free_at)
        self._check(first)
        if self.in_order:  # the ring only needs to span the holds ahead of each access
            self._ensure(self.base + 2 * self.hold_max + 2)
        else:
            self._ensure(max(int(arrive.max()), free_at, self.horizon_used) + n * (ii + self.hold_max)
                         + self.hold_max + 2)
        waited, self.base = _reserve_run(self.cal, self.window - 1, self.ports, arrive.astype(np.int64), ii, free_at,
                                         bank_ids.astype(np.int64), self.busy, out, self.base, self.in_order)
        self.horizon_used = max(self.horizon_used, int(out.max()) + self.hold_max)  # base <= every start
        return out, int(waited)

    def reserve_one(self, bank: int, want: int) -> int:
        """Reserve the first cycle >= want with a free port of `bank`; returns it."""
        if want < self.base:
            self._check(want)
        cal = self.cal
        top = want if want > self.horizon_used else self.horizon_used
        hold = self.busy_list[bank]
        if top + self.hold_max + 2 - self.base >= cal.shape[1]:
            self._ensure(top + self.hold_max + 2)
            cal = self.cal
        one = self._reserve_one
        if one is None:
            one = self._reserve_one = _reserve_one_entry()
        t = one(cal, cal.shape[1] - 1, self.ports, bank, want, hold)
        if t + hold > self.horizon_used:
            self.horizon_used = t + hold
        return t
