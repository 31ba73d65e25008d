"""``snnc report``: the mapping report (out/report.json) as a few lines and a table."""

from __future__ import annotations

from typing import Any


def _slices(pop: dict[str, Any]) -> str:
    first = pop["slices"][0]
    if "atoms" in first:
        return f"{len(pop['slices'])} x atoms [{first['atoms'][0]}, {first['atoms'][1]})..."
    return f"{len(pop['slices'])} tiles of {pop['per_core'][1]} rows x {pop['per_core'][2]} cols"


def format_report(report: dict[str, Any]) -> str:
    """The report in words: machine, instances and their arithmetic, per-population plan, energy."""
    lines = [
        f"{report['target']}: {report['instances_arithmetic']}",
        f"per instance: {report['neurons_per_instance']} neurons, {report['synapses_per_instance']} synapses, "
        f"{report['cores_per_instance']} cores; in all {report['cores']} cores on at least "
        f"{report['chips_used_at_least']} of {report['chips']} chips",
        f"time: {report['presentation_ms']:g} ms per sample + {report['pause_ms']:g} ms pause, time scale factor "
        f"{report['time_scale_factor']}: {report['wall_ms_per_inference']:.1f} ms of wall time per inference "
        f"with {report['instances']} instance(s)",
        "",
        f"{'population':<24} {'shape':<14} {'neurons':>8} {'cores':>6} {'synapses in':>12} {'events/ms/core':>15}  "
        "slices",
    ]
    for pop in report["populations"]:
        shape = "x".join(map(str, pop["shape"]))
        load = pop.get("synaptic_events_per_ms_per_core")
        lines.append(f"{pop['id'][:24]:<24} {shape:<14} {pop['neurons']:>8} {pop['cores']:>6} {pop['synapses_in']:>12} "
                     f"{'' if load is None else f'{load:.0f}':>15}  {_slices(pop)}")  # fmt: skip
    energy = report.get("energy")
    if energy:
        lines += [
            "",
            f"energy: {energy['mj_per_inference']:.3g} mJ per inference ({energy['synaptic_events_per_inference']:.3g} "
            f"synaptic events, {energy['spikes_per_inference']:.3g} spikes; synapses {energy['synaptic_mj']:.3g} mJ, "
            f"neurons {energy['neuron_mj']:.3g} mJ); with the machine's idle power "
            f"{energy['mj_per_inference_with_idle']:.3g} mJ",
            f"  model: {energy['model']}",
            f"  figures: {energy['source']}",
        ]
    return "\n".join(lines)
