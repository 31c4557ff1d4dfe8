"""The index SRAM: banks of rows holding packed indices and FP16 norms, and its port calendars.

Row layout (docs/architecture.md): index i at bits [i*b, (i+1)*b), little-endian, then the 16
bits of the FP16 norm; bit k of the row is bit k%8 of byte k//8. The baselines store FP16
vectors instead (`pack_fp16_rows`). Addresses come from `sram.mapping`; a trace needing more
rows than a bank holds is rejected (ConfigError) or its excess rows are spilled off-macro and
counted as `offchip` accesses, never wrapped.
"""

from __future__ import annotations

import numba
import numpy as np

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


def pack_index_rows(idx: np.ndarray, norms_fp16: np.ndarray, bits: int, row_bytes: int) -> np.ndarray:
    """Rows [n, row_bytes] uint8 from indices [n, d] and FP16 norms [n] (as float64 values)."""
    n, d = idx.shape
    shifts = np.arange(bits, dtype=np.uint8)
    idx_bits = ((idx.astype(np.uint8)[:, :, None] >> shifts) & 1).reshape(n, d * bits)
    norm_word = norms_fp16.astype(np.float16).view(np.uint16)
    norm_bits = ((norm_word[:, None] >> np.arange(16, dtype=np.uint16)) & 1).astype(np.uint8)
    row = np.packbits(np.concatenate([idx_bits, norm_bits], axis=1), axis=1, bitorder="little")
    out = np.zeros((n, row_bytes), dtype=np.uint8)
    out[:, :row.shape[1]] = row
    return out


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


@numba.njit(cache=True)
def _reserve_run(cal, ports, arrive, ii, free_at, bank_ids, out):
    prev = free_at - ii
    waited = 0
    for i in range(arrive.size):
        want = max(arrive[i], prev + ii)
        t = want
        base = bank_ids[i] * ports
        while True:
            port = -1
            for p in range(ports):
                if cal[base + p, t] == 0:
                    port = p
                    break
            if port >= 0:
                cal[base + port, t] = 1
                break
            t += 1
        waited += t - want
        out[i] = t
        prev = t
    return waited


class BankCalendar:
    """Per-cycle occupancy of every port of every bank (one kind of port: read or write).

    An access occupies one port of its bank for one cycle (pipelined SRAM; the data arrives
    `latency` cycles later). Two requests to one bank in one cycle with one port: the later
    reserved (the younger stream, in program order) waits for the next free cycle. Streams
    reserve in program order, which equals a per-cycle arbiter giving the older stream priority.
    """

    def __init__(self, banks: int, ports: int):
        self.banks = banks
        self.ports = ports
        self.cal = np.zeros((banks * ports, 1024), dtype=np.uint8)
        self.horizon_used = 0

    def _ensure(self, until: int) -> None:
        if until >= self.cal.shape[1]:
            width = max(until + 1, 2 * self.cal.shape[1])
            grown = np.zeros((self.cal.shape[0], width), dtype=np.uint8)
            grown[:, :self.cal.shape[1]] = self.cal
            self.cal = grown

    def reserve_run(self, arrive: np.ndarray, ii: int, free_at: int, bank_ids: np.ndarray) -> tuple[np.ndarray, int]:
        """In-order reservation of a run of accesses; returns start cycles and cycles waited."""
        n = arrive.size
        bound = max(int(arrive.max()) if n else 0, free_at, self.horizon_used) + n * (ii + 1) + 2
        self._ensure(bound)
        out = np.empty(n, dtype=np.int64)
        waited = _reserve_run(self.cal, self.ports, arrive.astype(np.int64), ii, free_at,
                              bank_ids.astype(np.int64), out)
        if n:
            self.horizon_used = max(self.horizon_used, int(out.max()) + 1)
        return out, int(waited)

    def reserve_one(self, bank: int, want: int) -> int:
        """Reserve the first cycle >= want with a free port of `bank`; returns it."""
        t = want
        self._ensure(max(t, self.horizon_used) + 2)
        rows = self.cal[bank * self.ports:(bank + 1) * self.ports]
        while True:
            free = np.flatnonzero(rows[:, t] == 0)
            if free.size:
                rows[free[0], t] = 1
                self.horizon_used = max(self.horizon_used, t + 1)
                return t
            t += 1
            self._ensure(t + 1)
            rows = self.cal[bank * self.ports:(bank + 1) * self.ports]
