"""Terminal text: the run summary an architect reads in ten seconds, and the other commands' tables.

Every function takes plain dicts (a report, a compare result, a codebook dict) and returns text;
nothing here computes a figure, it only reads and formats (units always printed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axelsim.report.figures import PHASES, headline, lookup, top_components


_STEPS = {
    "pJ": [(1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ")],
    "s": [(1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")],
    "bytes": [(2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B")],
    "um2": [(1e6, "mm²"), (1.0, "µm²")],
    "Hz": [(1e9, "GHz"), (1e6, "MHz"), (1e3, "kHz"), (1.0, "Hz")],
}


def scaled(value: float | None, unit: str) -> str:
    """A number with an SI prefix chosen for it: scaled(12345.0, 'pJ') -> '12.35 nJ'.

    Units understood: pJ (pJ..J), s (ns..s), bytes (B, KiB, MiB, GiB), um2 (µm², mm²), Hz (Hz..GHz).
    """
    if value is None:
        return "n/a"
    factor, name = prefix(value, unit)
    return f"{value / factor:.4g} {name}"


def prefix(value: float, unit: str) -> tuple[float, str]:
    """(factor, unit name) `scaled` writes `value` in: the largest step not above |value|."""
    steps = _STEPS[unit]
    for factor, name in steps:
        if abs(value) >= factor:
            return factor, name
    return steps[-1]


def _share(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) else "n/a"


def _sci(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "n/a"


def _component_total(value: Any) -> float:
    return float(value.get("total", 0.0)) if isinstance(value, dict) else float(value)


def _qjl_line(report: dict) -> list[str]:
    """The QJL residual's geometry (a `residual: qjl` macro), else nothing."""
    q = report.get("qjl")
    if not q:
        return []
    return [f"qjl          keys {q['key_index_bits']}-bit MSE + {q['sketch_bits']} sketch bits + FP16 residual norm"
            f" ({q['key_row_bits']}-bit rows), values {q['value_index_bits']}-bit ({q['value_row_bits']});"
            f" projector {q['projector_ii_cycles']} cycles per key or query"]


def _state_line(report) -> list[str]:
    """Energy by power state and the row store's tiles (absent in reports without them)."""
    states, tiles = report["energy_pj"].get("by_state"), report.get("sram_tiles")
    if not states or not tiles:
        return []
    t = tiles.get("timing", {})
    return [f"  states     dynamic {scaled(states['dynamic'], 'pJ')}   leakage active {scaled(states['leakage_active'], 'pJ')}"
            f"   idle {scaled(states['leakage_idle'], 'pJ')}   off {scaled(states['leakage_off'], 'pJ')}"
            f"   ({tiles['tiles_holding_data']}/{tiles['tiles']} tiles of {_count(tiles['tile_bytes'])} B hold data, "
            f"gating {tiles['gating']}; read {t.get('read_latency_cycles')} / write {t.get('write_latency_cycles')} cycles, "
            f"bank II {t.get('bank_ii_cycles')}, {'derived' if set(t.get('source', {}).values()) <= {'derived'} else 'some overridden'})"]


def _top_line(breakdown: dict[str, Any], total: float) -> str:
    totals = {name: _component_total(value) for name, value in breakdown.items()}
    return "   ".join(f"{name} {_share(value, total)}" for name, value in top_components(totals))


def format_summary(report: dict[str, Any]) -> str:
    """The run summary: one line each for cycles, energy, area, memory, multiplications,
    numerics and the baselines, each number with its unit."""
    macro, trace = report["macro"], report["trace"]
    cycles, energy, area = report["cycles"], report["energy_pj"], report["area_um2"]
    memory, mults, numerics = report["memory_bytes"], report["multiplications_per_query"], report["numerics"]
    lines = [
        f"macro        {macro['name']}: d={macro['head_dim']} b={macro['bits']}, {macro['technology']['node_nm']} nm, "
        f"clock {scaled(macro['clock_hz'], 'Hz')}   ({report['inputs']['fidelity']} fidelity)",
        f"trace        {trace['name']}: {trace['n_layers']} layers x {trace['kv_heads']} KV heads "
        f"({trace['q_heads']} query heads) x {trace['tokens']} tokens, {trace['queries']} queries per head",
    ]
    derived = (report.get("inputs") or {}).get("derived") or {}
    if derived:
        lines.append(f"auto         {_derived_line(derived)}")
    if "sram_tiles" in report:
        lines.append(_sram_line(report["sram_tiles"]))
    lines += [
        f"cycles       {_count(cycles['total'])} = {scaled(report['time_s'], 's')}   "
        + "  ".join(f"{phase} {_share(cycles[phase], cycles['total'])}" for phase in PHASES)
        + (f"  idle {_share(cycles['idle'], cycles['total'])}" if "idle" in cycles else "")
        + "  (each cycle once: value > read > precompute > write)",
    ]
    active = report.get("phase_active_cycles") or {}
    stalls = report.get("stall_cycles_by_unit") or {}
    lines.append("  in flight  " + "  ".join(f"{phase} {_share(active[phase], cycles['total'])}" for phase in PHASES
                                            if phase in active)
                 + f"   stalls {_count(cycles['stall'])} cycles ({_share(cycles['stall'], cycles['total'])})"
                 + (": " + ", ".join(f"{unit} {_count(n)}" for unit, n in stalls.items()) if stalls else ""))
    decode = report.get("decode") or {}
    if decode.get("steps"):
        lines.append(f"decode       {scaled(decode['latency_s_mean'], 's')} per token (mean of {decode['steps']} steps, "
                     f"max {_count(decode['latency_cycles_max'])} cycles) = {decode['tokens_per_s']:,.0f} tokens/s"
                     f" for the {decode['layers_replayed']} replayed layers")
    lines += [
        f"energy       {scaled(energy['total'], 'pJ')} (dynamic {scaled(energy['dynamic_total'], 'pJ')}, "
        f"leakage {scaled(energy['leakage_total'], 'pJ')})   per query {scaled(energy['per_query'], 'pJ')}"
        f"   per token {scaled(energy['per_token'], 'pJ')}",
        f"  top        {_top_line(energy['by_component'], energy['total'])}",
        *_state_line(report),
        f"area         {scaled(area['total'], 'um2')}   top: {_top_line(area['by_component'], area['total'])}",
        f"memory       KV {scaled(memory['kv_storage'], 'bytes')} ({report['kv_compression_x']:.2f}x smaller than FP16)"
        f"   codebook ROM {_count(memory['codebook_rom'])} B   sign ROM {_count(memory['sign_rom'])} B"
        f"   table {scaled(memory['table'], 'bytes')}"
        + (f"   sketch ROM {scaled(memory['sketch_rom'], 'bytes')}" if "sketch_rom" in memory else ""),
        *_qjl_line(report),
        f"mults/query  {_count(mults['axelram'])} AXELRAM vs {_count(mults['conventional'])} conventional"
        f" (mean T={mults['keys_per_query_mean']:.1f} keys, d={macro['head_dim']}): {mults['reduction']:.1f}x fewer",
        f"numerics     bit_exact {'YES' if numerics['bit_exact'] else 'NO'}   score rel RMSE {_sci(numerics['score_rel_rmse'])}"
        f"   max |err| {_sci(numerics['score_max_abs_err'])}   KL {_sci(numerics['attn_kl'])} nats"
        f"   top-1 {_percent(numerics['top1_agreement'])}   output rel RMSE {_sci(numerics['output_rel_rmse'])}"
        f"{_overflow_note(numerics)}",
    ]
    for kind, section in (report.get("baselines") or {}).items():
        exact = (section.get("numerics") or {}).get("bit_exact")
        lines.append(f"baseline     {kind:<22} {_versus(section, report)}"
                     + ("" if exact is None else f"   bit_exact {'YES' if exact else 'NO'}")
                     + _overflow_note(section.get("numerics")))
    return "\n".join(lines)


def _overflow_note(numerics: dict[str, Any] | None) -> str:
    """'; 9 scores/outputs overflowed its formats (error figures inf)' when the datapath overflowed."""
    count = (numerics or {}).get("overflows") or 0
    return f"; {count:,} scores/outputs overflowed its formats (error figures inf)" if count else ""


def _derived_line(derived: dict[str, Any]) -> str:
    """'head_dim=64 (trace); 11 lane counts balanced: comparators 448, ...' from inputs.derived."""
    parts = []
    if "head_dim" in derived:
        parts.append(f"head_dim={derived['head_dim']} (the trace's)")
    lanes = {key: value for key, value in derived.items() if key != "head_dim"}
    if lanes:
        parts.append(f"{len(lanes)} lane counts derived (balanced rule): "
                     + ", ".join(f"{key.split('.')[-1]} {value}" for key, value in lanes.items()))
    return "; ".join(parts)


def _sram_line(sram: dict[str, Any]) -> str:
    """Capacity against the trace's occupancy, from the report's `sram` section."""
    line = (f"sram         {scaled(sram['capacity_bits'] / 8, 'bytes')} index SRAM; trace occupies "
            f"{scaled(sram['occupied_bits'] / 8, 'bytes')} ({_percent(sram['occupancy'])})")
    if sram.get("spilled_bits"):
        line += f", {scaled(sram['spilled_bits'] / 8, 'bytes')} spilled off-macro"
    return line


def _percent(value: Any) -> str:
    return f"{100.0 * value:.1f}%" if isinstance(value, (int, float)) else "n/a"


def _versus(section: dict[str, Any], report: dict[str, Any]) -> str:
    """'energy/query 2.1x, area 1.5x, cycles 3.0x, KV memory 5.1x of AXELRAM' for one baseline."""
    parts = []
    for label, path in (("energy/query", ("energy_pj", "per_query")), ("area", ("area_um2", "total")),
                        ("cycles", ("cycles", "total")), ("KV memory", ("memory_bytes", "kv_storage"))):
        theirs, ours = lookup(section, path), lookup(report, path)
        if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)) and ours:
            parts.append(f"{label} {theirs / ours:.2f}x")
    return ", ".join(parts) + " of AXELRAM" if parts else "n/a"


_COLUMNS = (
    ("design", None, 31),  # "baseline dequant_inverse_rotate"
    ("cycles", "cycles_total", 13),
    ("time", "time_s", 10),
    ("E/query", "energy_pj_per_query", 13),
    ("E/token", "energy_pj_per_token", 13),
    ("area", "area_um2_total", 11),
    ("memory", "memory_bytes_total", 12),
    ("mul/query", "multiplications_per_query", 11),
    ("bit_exact", "bit_exact", 9),
    ("score rRMSE", "score_rel_rmse", 11),
    ("top-1", "top1_agreement", 7),
)


def _unit_of(key: str | None) -> str | None:
    """The `scaled` unit of a headline column, None for a plain number."""
    if key == "time_s":
        return "s"
    if key and key.startswith("energy_pj"):
        return "pJ"
    return {"area_um2_total": "um2", "memory_bytes_total": "bytes"}.get(key or "")


def _cell(key: str | None, value: Any) -> str:
    if value is None:
        return "-"
    unit = _unit_of(key)
    if unit is not None:
        return scaled(value, unit)
    if key == "bit_exact":
        return "yes" if value else "NO"
    if key == "top1_agreement":
        return _percent(value)
    if key in ("cycles_total", "multiplications_per_query"):
        return _count(value)
    return _sci(value) if isinstance(value, float) else str(value)


def format_rows(named: dict[str, dict[str, Any]]) -> str:
    """A fixed-width table of headline figures, one row per (label, report-like dict).

    A column with a unit is written in one unit, named in its header (`E/query (nJ)`): the
    prefix `scaled` picks for the column's largest value, so rows compare digit by digit."""
    rows = {label: headline(report) for label, report in named.items()}
    units: dict[str, tuple[float, str]] = {}
    for _, key, _ in _COLUMNS[1:]:
        unit = _unit_of(key)
        values = [abs(row[key]) for row in rows.values() if isinstance(row.get(key), (int, float))]
        if unit is not None and values:
            units[key] = prefix(max(values), unit)
    header = " ".join(f"{title:<{width}}" if key is None else
                      f"{title + (f' ({units[key][1]})' if key in units else ''):>{width}}"
                      for title, key, width in _COLUMNS)
    lines = [header]
    name_width = _COLUMNS[0][2]
    for label, row in rows.items():
        cells = [f"{label[:name_width]:<{name_width}}"]
        for _, key, width in _COLUMNS[1:]:
            value = row[key]
            text = f"{value / units[key][0]:.4g}" if key in units and value is not None else _cell(key, value)
            cells.append(f"{text:>{width}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def format_compare(result: dict[str, Any]) -> str:
    """`axelsim compare`: the trace line, then every design and baseline side by side."""
    trace = result["trace"]
    rows = dict(result["designs"])
    rows.update({f"baseline {kind}": section for kind, section in result.get("baselines", {}).items()})
    return (f"trace {trace['name']}: {trace['n_layers']} layers x {trace['kv_heads']} KV heads x "
            f"{trace['tokens']} tokens, {trace['queries']} queries per head\n" + format_rows(rows))


def format_sweep(outcome: Any) -> str:
    """`axelsim sweep`: counts, where the results are, and the best point on each axis."""
    ok = [row for row in outcome.rows if row["status"] == "ok"]
    failed = len(outcome.rows) - len(ok)
    lines = [
        f"sweep        {len(outcome.rows)} points ({outcome.evaluated} evaluated now, {outcome.skipped} already done"
        f"{f', {failed} rejected by the macro' if failed else ''})",
        f"csv          {outcome.csv_path}",
        f"reports      {outcome.out_dir / 'points'}",
    ]
    if outcome.plots:
        lines.append(f"plots        {len(outcome.plots)} files in {outcome.out_dir}")
    for key, label in (("energy_pj_per_query", "lowest energy/query"), ("area_um2_total", "smallest area"),
                       ("score_rel_rmse", "lowest score error")):
        candidates = [row for row in ok if isinstance(row.get(key), (int, float))]
        if candidates:
            best = min(candidates, key=lambda row: (row[key], row["point_id"]))
            settings = ", ".join(f"{name[4:]}={best[name]}" for name in best if name.startswith("set."))
            lines.append(f"{label:<20} {_cell(key, best[key])}  point {best['point_id']} ({settings or 'base'}, {best['trace']})")
    return "\n".join(lines)


def format_codebook(book: dict[str, Any]) -> str:
    """`axelsim codebook`: levels, centroids and boundaries (N(0,1) and scaled), ROM image."""
    lines = [
        f"codebook     d={book['dim']} b={book['bits']}: {book['levels']} levels, Lloyd-Max of N(0, 1/d)",
        f"distortion   {book['distortion_per_coord_n01']:.6g} per coordinate in N(0,1) units"
        f" ({book['distortion_per_coord_unit_vector']:.6g} per coordinate of a unit vector)",
        f"residuals    centroid {book['centroid_residual_n01']:.2e}, midpoint {book['midpoint_residual_n01']:.2e} (N(0,1) units)",
        f"ROM          {book['rom_bytes']} bytes: {book['rom_image_hex']}",
        "",
        f"{'level':>5} {'centroid N(0,1)':>16} {'/sqrt(d)':>12} {'ROM fp16':>12} {'boundary above':>15} {'ROM fp16':>12}",
    ]
    for level in range(book["levels"]):
        boundary = book["boundaries_n01"][level] if level < book["levels"] - 1 else None
        rom_boundary = book["rom_boundaries_fp16"][level] if boundary is not None else None
        lines.append(
            f"{level:>5} {book['centroids_n01'][level]:>16.6f} {book['centroids_scaled'][level]:>12.6f}"
            f" {book['rom_centroids_fp16'][level]:>12.6f}"
            + (f" {boundary:>15.6f} {rom_boundary:>12.6f}" if boundary is not None else "")
        )
    return "\n".join(lines)


def _objective(entry: dict[str, Any], when: str) -> float:
    """Key MSE + value MSE (when values were scored) of one calibration entry, 'before' or 'after'."""
    return entry[f"key_mse_{when}"] + (entry[f"value_mse_{when}"] or 0.0)


def format_calibration(table: str, written: Any, calibration: dict[str, Any] | None = None) -> str:
    """`axelsim calibrate-signs`: the calibration's own table, where the sign ROM went and, when
    `calibration` (CalibrationResult.to_dict()) holds per-head choices (--per-head), what a ROM
    of one vector per (layer, KV head) would reach: its MSE pooled over the layer's heads
    (weighted by their vector counts) against the per-layer choice."""
    lines = [table]
    heads = (calibration or {}).get("heads") or []
    if heads:
        per_layer = {entry["layer"]: _objective(entry, "after") for entry in calibration["layers"]}
        lines.append("per-head ROM (reported only: a macro loads one vector per layer)")
        lines.append(f"{'layer':>5} {'heads':>5} {'mse per-layer':>13} {'mse per-head':>12} {'gain %':>7}")
        for layer, layer_mse in per_layer.items():
            group = [entry for entry in heads if entry["layer"] == layer]
            vectors = sum(entry["vectors"] for entry in group)
            head_mse = sum(_objective(entry, "after") * entry["vectors"] for entry in group) / vectors if vectors else 0.0
            gain = 100.0 * (1.0 - head_mse / layer_mse) if layer_mse else 0.0
            lines.append(f"{layer:>5} {len(group):>5} {layer_mse:>13.5f} {head_mse:>12.5f} {gain:>7.2f}")
    lines.append(f"signs        {written}" if written else "signs        not written (give --out SIGNS.yaml)")
    return "\n".join(lines)


def format_sensitivity(result: dict[str, Any], out_dir: Any) -> str:
    """`axelsim sensitivity`: per bit-width, the seed mean, worst layer-seed and calibrated value of
    the study's metrics (axelsim.calibrate.sensitivity.summarize), then the files written."""
    seeds = result["seeds"]
    lines = [f"sensitivity {result['trace']}: {len(result['key_norm_mean'])} layers, {len(seeds)} seeds "
             f"({seeds[0]}..{seeds[-1]}), calibrated: {result['candidates'] or 'none'} candidates; "
             f"key norm max/min over layers {result['norm_heterogeneity']:.2f}"]
    lines.append(f"{'b':>2} {'metric':<16} {'seed mean':>10} {'worst':>10} {'calibrated':>10} {'cal. worst':>10}")
    names = (("key_mse_ratio", "key MSE / D_b"), ("score_rel_rmse", "score rel RMSE"), ("attn_kl", "softmax KL nats"),
             ("top1_agreement", "top-1 agreement"), ("output_rel_rmse", "output rel RMSE"))

    def cell(value: Any) -> str:
        return f"{value:>10.4g}" if isinstance(value, (int, float)) else f"{'n/a':>10}"

    for bits in result["bits"]:
        entry = result["summary"][str(bits)]
        for key, label in names:
            if key not in entry:
                continue
            figures = entry[key]
            lines.append(f"{bits:>2} {label:<16} {cell(figures['seed_mean'])} {cell(figures['worst_seed_layer'])} "
                         f"{cell(figures['calibrated_mean'])} {cell(figures['calibrated_worst_layer'])}")
    lines.append("worst: the highest value over layers and seeds (lowest for top-1 agreement)")
    lines.append(f"report   {Path(out_dir) / ('sensitivity_' + result['trace'] + '.json')}")
    lines.append(f"plot     {Path(out_dir) / ('sensitivity_' + result['trace'] + '.png')}")
    return "\n".join(lines)

