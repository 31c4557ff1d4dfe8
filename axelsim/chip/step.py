"""The decode step and the prefill of a chip as simpy events with contention.

Decode step, per layer (schedule `layer_serial`: layer l + 1 starts when layer l's outputs are
all at the host; `all_layers`: every layer at cycle 0), per (sequence, KV head) group:
1. host link in: the group's G query vectors (FP16), plus the new token's K and V for the
   instance holding the newest range;
2. network, root -> each range's instance: the same (unicast per instance);
3. the instance (one request at a time, FIFO): a streamed share first waits for its rows from
   off-chip; then the new token's write (newest range) and the service, cycles from the cycle model;
4. network, instance -> root: the partial (G outputs in the value format, plus m and E in the
   softmax format when the head is split) or, unsplit, the outputs;
5. split heads: the merge unit (FIFO over `merge.units`), G merges of S partials;
6. host link out: the G outputs.
Prefill: every share's K, V (FP16) over the host link and the network, then its writes
(cycles from the cycle model); streamed shares' rows then go out to off-chip memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import simpy

from axelsim.chip.merge import merge_cycles
from axelsim.chip.network import Channel, Network
from axelsim.chip.plan import Plan, rows_per_token
from axelsim.config import MacroConfig
from axelsim.config.chip import ChipConfig

INPUT_BITS = 16
"""Queries, keys and values cross the host link and the network as FP16."""


@dataclass
class StepTiming:
    """What the events measured (cycles at the macro clock, bits)."""

    latency_cycles: int
    instance_busy_cycles: list[int]
    network: Network
    host_in: Channel
    host_out: Channel
    offchip: Channel
    merge_busy_cycles: int = 0
    merges: int = 0
    offchip_rows: int = 0
    layer_end_cycles: list[int] = field(default_factory=list)


def _bits_per_cycle(gb_s: float, clock_hz: float) -> float:
    return gb_s * 8e9 / clock_hz


def _channels(env, chip: ChipConfig, clock_hz: float):
    host_bpc = _bits_per_cycle(chip.host.bandwidth_gb_s, clock_hz)
    off = Channel(env, _bits_per_cycle(chip.offchip.bandwidth_gb_s, clock_hz),
                  math.ceil(chip.offchip.latency_ns * 1e-9 * clock_hz))
    return Channel(env, host_bpc), Channel(env, host_bpc), off


def row_write_cycles(macro: MacroConfig, rows: int) -> int:
    """Rows already in the macro's row format written through every bank's write ports."""
    return -(-rows // (macro.sram.banks * macro.sram.write_ports))


def decode_step(plan: Plan, chip: ChipConfig, macro: MacroConfig, results: dict, pitch_mm: float,
                row_bits: int, exp_cycles: int) -> StepTiming:
    """Simulate one decode step; `results[share.index]` is the share's ShareResult; `exp_cycles`:
    the merge unit's exp stage (the instances' derived exp latency)."""
    env = simpy.Environment()
    net = Network(env, chip.interconnect, plan.instances, pitch_mm)
    host_in, host_out, offchip = _channels(env, chip, macro.clock_hz)
    merger = simpy.Resource(env, capacity=chip.merge.units)
    instances = [simpy.Resource(env, capacity=1) for _ in range(plan.instances)]
    busy = [0] * plan.instances
    d, G, S = macro.head_dim, plan.shape.group, plan.split
    v_bits = macro.formats.get("value").width_bits
    s_bits = macro.formats.get("softmax").width_bits
    timing = StepTiming(0, busy, net, host_in, host_out, offchip)
    loaded = {share.index: env.event() for share in plan.shares if share.streamed}
    slots = {i: simpy.Store(env) for i in range(plan.instances)}
    per_token = rows_per_token(macro)

    def loader(inst: int, streamed: list):
        for share in streamed:
            yield slots[inst].get()
            rows = share.tokens * per_token
            yield env.process(offchip.transfer(rows * row_bits))
            yield env.timeout(row_write_cycles(macro, rows))
            timing.offchip_rows += rows
            loaded[share.index].succeed()

    by_instance: dict[int, list] = {}
    for share in plan.shares:
        if share.streamed:
            by_instance.setdefault(share.instance, []).append(share)
    for inst, streamed in by_instance.items():
        slots[inst].put(True)
        env.process(loader(inst, streamed))

    def serve(share, writer: bool):
        result = results[share.index]
        yield env.process(net.transfer(share.instance, G * d * INPUT_BITS + (2 * d * INPUT_BITS if writer else 0),
                                       False, "query"))
        if share.streamed:
            yield loaded[share.index]
        with instances[share.instance].request() as request:
            yield request
            cycles = result.service_cycles + (result.write_cycles if writer else 0)
            busy[share.instance] += cycles
            yield env.timeout(cycles)
        if share.streamed:
            slots[share.instance].put(True)
        partial = G * (d * v_bits + (2 * s_bits if S > 1 else 0))
        yield env.process(net.transfer(share.instance, partial, True, "partial" if S > 1 else "output"))

    def group(shares: list):
        yield env.process(host_in.transfer(G * d * INPUT_BITS + 2 * d * INPUT_BITS))
        yield simpy.AllOf(env, [env.process(serve(share, share.hi == plan.context)) for share in shares])
        if S > 1:
            with merger.request() as request:
                yield request
                cycles = G * merge_cycles(S, d, chip.merge.lanes, exp_cycles)
                timing.merge_busy_cycles += cycles
                timing.merges += G
                yield env.timeout(cycles)
        yield env.process(host_out.transfer(G * d * v_bits))

    def layers():
        pending = []
        for layer in range(plan.shape.layers):
            procs = [env.process(group(shares)) for shares in plan.layer_groups(layer).values()]
            if chip.schedule == "layer_serial":
                yield simpy.AllOf(env, procs)
                timing.layer_end_cycles.append(int(env.now))
            else:
                pending.extend(procs)
        if pending:
            yield simpy.AllOf(env, pending)

    env.run(until=env.process(layers()))
    timing.latency_cycles = int(env.now)
    return timing


def prefill(plan: Plan, chip: ChipConfig, macro: MacroConfig, results: dict, pitch_mm: float,
            row_bits: int) -> StepTiming:
    """Simulate writing the whole context (every share's tokens) into the chip."""
    env = simpy.Environment()
    net = Network(env, chip.interconnect, plan.instances, pitch_mm)
    host_in, host_out, offchip = _channels(env, chip, macro.clock_hz)
    instances = [simpy.Resource(env, capacity=1) for _ in range(plan.instances)]
    busy = [0] * plan.instances
    timing = StepTiming(0, busy, net, host_in, host_out, offchip)
    d, per_token = macro.head_dim, rows_per_token(macro)

    def write(share):
        bits = share.tokens * per_token * d * INPUT_BITS
        yield env.process(host_in.transfer(bits))
        yield env.process(net.transfer(share.instance, bits, False, "kv"))
        with instances[share.instance].request() as request:
            yield request
            cycles = results[share.index].prefill_cycles
            busy[share.instance] += cycles
            yield env.timeout(cycles)
        if share.streamed:
            rows = share.tokens * per_token
            timing.offchip_rows += rows
            yield env.process(offchip.transfer(rows * row_bits))

    env.run(until=simpy.AllOf(env, [env.process(write(share)) for share in plan.shares]))
    timing.latency_cycles = int(env.now)
    return timing
