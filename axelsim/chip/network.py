"""The chip's interconnect and host interface as simpy resources with contention.

Instances sit on a grid of ceil(sqrt(N)) columns at a pitch p (mm). The host port, with the
merge unit beside it, is the network's root. A transfer of `bits` is ceil(bits / link_bits)
flits. It takes the links of its path in order: on each it waits for the link (FIFO), holds
it for its flits, and reaches the next link hop_latency cycles after entering this one; it
arrives when its last flit leaves the last link. Uncontended, a transfer over h links arrives
h * hop_latency + flits cycles after it is ready.

Topologies (path from instance i to the root; the way back uses separate links):
- bus: one shared link for both directions, length N * p (a bus threaded past every instance);
- mesh: XY routing to the corner router (0, 0), then its port: x + y + 1 links of length p;
- htree: a binary tree over the grid (k = ceil(log2 N) levels); the root at the centre; the
  edge into a node of depth j is a quarter of the side of its parent's rectangle that the
  split halves (x first, then y, alternating): lengths ... p, p/2 at the leaves.
Wire energy: bits x path length (mm) x energy_pj_per_bit_mm.
The host link (one per direction) moves bandwidth * 8 / clock bits per cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import simpy

from axelsim.config.chip import InterconnectConfig


@dataclass
class Link:
    """One directed link: a FIFO resource with its length and what it carried."""

    resource: simpy.Resource
    length_mm: float
    busy_cycles: int = 0


@dataclass
class Traffic:
    """Bits and bit-millimetres moved (for energy), per network."""

    bits: int = 0
    bit_mm: float = 0.0
    transfers: int = 0
    by_kind: dict = field(default_factory=dict)


def grid_columns(n: int) -> int:
    return max(1, math.isqrt(n - 1) + 1) if n > 1 else 1


def htree_lengths(levels: int, pitch: float) -> list[float]:
    """Edge length into depth j = 1..levels of an H-tree over a 2^a x 2^b grid (a + b = levels)."""
    width = pitch * 2 ** ((levels + 1) // 2)
    height = pitch * 2 ** (levels // 2)
    lengths = []
    for depth in range(1, levels + 1):
        if depth % 2:  # split in x: children's centres a quarter of the width away
            lengths.append(width / 4)
            width /= 2
        else:
            lengths.append(height / 4)
            height /= 2
    return lengths


class Network:
    """Paths and links of one topology over `n` instances (pitch in mm, cycles at the chip clock)."""

    def __init__(self, env: simpy.Environment, config: InterconnectConfig, n: int, pitch_mm: float):
        self.env, self.config, self.n, self.pitch = env, config, n, pitch_mm
        self.links: dict[tuple, Link] = {}
        self.traffic = Traffic()
        self.cols = grid_columns(n)
        self.levels = max(1, math.ceil(math.log2(n))) if n > 1 else 1

    def _link(self, key: tuple, length: float) -> Link:
        if key not in self.links:
            self.links[key] = Link(simpy.Resource(self.env, capacity=1), length)
        return self.links[key]

    def path(self, instance: int, up: bool) -> list[Link]:
        """Links from instance to the root (up) or from the root to the instance."""
        topo, p = self.config.topology, self.pitch
        if topo == "bus":
            return [self._link(("bus",), self.n * p)]
        if topo == "mesh":
            x, y = instance % self.cols, instance // self.cols
            hops = [("x", xx, y) for xx in range(x, 0, -1)] + [("y", 0, yy) for yy in range(y, 0, -1)] + [("port",)]
            links = [self._link((up, *hop), p) for hop in hops]
            return links if up else links[::-1]
        lengths = htree_lengths(self.levels, p)
        edges = [(depth, instance >> (self.levels - depth)) for depth in range(self.levels, 0, -1)]
        links = [self._link((up, "tree", depth, node), lengths[depth - 1]) for depth, node in edges]
        return links if up else links[::-1]

    def hops(self, instance: int) -> int:
        return len(self.path(instance, True))

    def length_mm(self, instance: int) -> float:
        return sum(link.length_mm for link in self.path(instance, True))

    def transfer(self, instance: int, bits: int, up: bool, kind: str):
        """A simpy process: move `bits` between an instance and the root."""
        flits = -(-bits // self.config.link_bits)
        path = self.path(instance, up)
        self.traffic.bits += bits
        self.traffic.bit_mm += bits * sum(link.length_mm for link in path)
        self.traffic.transfers += 1
        self.traffic.by_kind[kind] = self.traffic.by_kind.get(kind, 0) + bits
        for link in path:
            request = link.resource.request()
            yield request
            link.busy_cycles += flits
            self.env.timeout(flits).callbacks.append(lambda _, res=link.resource, req=request: res.release(req))
            if self.config.hop_latency_cycles:
                yield self.env.timeout(self.config.hop_latency_cycles)
        yield self.env.timeout(flits)


class Channel:
    """A point-to-point channel of fixed bandwidth (host link, off-chip memory): FIFO, one transfer at a time."""

    def __init__(self, env: simpy.Environment, bits_per_cycle: float, latency_cycles: int = 0):
        self.env, self.bits_per_cycle, self.latency = env, bits_per_cycle, latency_cycles
        self.resource = simpy.Resource(env, capacity=1)
        self.bits = 0
        self.busy_cycles = 0

    def cycles(self, bits: int) -> int:
        return math.ceil(bits / self.bits_per_cycle)

    def transfer(self, bits: int):
        """A simpy process: hold the channel for the transfer, then the latency to arrival."""
        with self.resource.request() as request:
            yield request
            hold = self.cycles(bits)
            self.bits += bits
            self.busy_cycles += hold
            yield self.env.timeout(hold)
        if self.latency:
            yield self.env.timeout(self.latency)
