"""``snnc report``: the mapping report (out/report.json) as a few lines and a table.

The report is read from a directory that may have been tampered with, so every field is checked
for its type before it is formatted, and strings are printed with control characters escaped.
"""

from __future__ import annotations

from typing import Any

from snnc.ir.errors import SnncError


class ReportError(SnncError):
    """A report.json that is not one snnc wrote; the message names the file and key."""


_INT, _NUM, _STR, _LIST, _DICT = "a whole number", "a number", "a string", "a list", "an object"
_TOP = {
    "target": _STR,
    "instances_arithmetic": _STR,
    "neurons_per_instance": _INT,
    "synapses_per_instance": _INT,
    "cores_per_instance": _INT,
    "cores": _INT,
    "chips_used_at_least": _INT,
    "presentation_ms": _NUM,
    "pause_ms": _NUM,
    "time_scale_factor": _NUM,
    "wall_ms_per_inference": _NUM,
    "instances": _INT,
    "populations": _LIST,
}
_POPULATION = {"id": _STR, "shape": _LIST, "neurons": _INT, "cores": _INT, "synapses_in": _INT, "slices": _LIST}
_ENERGY = {
    "mj_per_inference": _NUM,
    "synaptic_events_per_inference": _NUM,
    "spikes_per_inference": _NUM,
    "synaptic_mj": _NUM,
    "neuron_mj": _NUM,
    "mj_per_inference_with_idle": _NUM,
}


def _is(value: Any, kind: str) -> bool:
    if kind in (_INT, _NUM) and isinstance(value, bool):
        return False
    types = {_INT: int, _NUM: (int, float), _STR: str, _LIST: list, _DICT: dict}[kind]
    return isinstance(value, types)


def _require(obj: Any, fields: dict[str, str], where: str, optional: tuple[str, ...] = ()) -> None:
    if not isinstance(obj, dict):
        raise ReportError(f"{where}: expected {_DICT}, found {type(obj).__name__}")
    for key, kind in fields.items():
        value = obj.get(key)
        if value is None and key in optional:
            continue
        if not _is(value, kind):
            raise ReportError(f"{where}: key {key!r} is {_short(value)}, expected {kind}")


def _short(value: Any) -> str:
    text = "missing" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_MAC_TOP = {
    "target": _STR,
    "layers": _LIST,
    "tiles": _INT,
    "multiplications_per_sample": _INT,
    "chip_passes": _INT,
    "weight_write_ms": _NUM,
    "ms_per_sample": _NUM,
    "mj_per_sample": _NUM,
    "time_model": _STR,
    "ms_per_sample_fixed_chip": _NUM,
    "fixed_chip_model": _STR,
    "source": _STR,
}
_MAC_LAYER = {
    "id": _STR,
    "kind": _STR,
    "matrix": _LIST,
    "tiles": _LIST,
    "vectors_per_sample": _INT,
    "multiplications_per_sample": _INT,
    "num_sends": _INT,
    "shift": _INT,
}


def check_mac_report(report: Any, source: str = "report.json") -> None:
    """The checks of :func:`check_report` for a MAC-mode report (BrainScaleS-2)."""
    _require(report, _MAC_TOP, source)
    for i, layer in enumerate(report["layers"]):
        where = f"{source}: layers[{i}]"
        _require(layer, _MAC_LAYER, where)
        for key in ("matrix", "tiles"):
            if len(layer[key]) != 2 or not all(_is(v, _INT) for v in layer[key]):
                raise ReportError(f"{where}: key {key!r} is {_short(layer[key])}, expected two whole numbers")


def format_mac_report(report: dict[str, Any], source: str = "report.json") -> str:
    """A MAC-mode report in words: per layer its matrix, tiles and multiplications; time and energy."""
    check_mac_report(report, source)
    lines = [
        f"{_text(report['target'])}: {len(report['layers'])} MAC layers, {report['tiles']} tiles "
        f"({report['chip_passes']} passes over the chip's two halves), "
        f"{report['multiplications_per_sample']} vector-matrix multiplications per sample",
        "",
        f"{'layer':<24} {'kind':<6} {'matrix':>11} {'tiles':>7} {'vectors':>8} {'mults':>7} {'sends':>6} {'shift':>6}",
    ]
    for layer in report["layers"]:
        matrix, tiles = "x".join(map(str, layer["matrix"])), "x".join(map(str, layer["tiles"]))
        lines.append(
            f"{_text(layer['id'])[:24]:<24} {_text(layer['kind'])[:6]:<6} {matrix:>11} {tiles:>7} "
            f"{layer['vectors_per_sample']:>8} {layer['multiplications_per_sample']:>7} {layer['num_sends']:>6} "
            f"{layer['shift']:>6}"
        )
    lines += [
        "",
        f"time: {report['ms_per_sample']:.1f} ms and {report['mj_per_sample']:.2f} mJ per sample; "
        f"writing the weights takes {report['weight_write_ms']:g} ms",
        f"  model: {_text(report['time_model'])}",
        f"  without the reconfiguration bug: {report['ms_per_sample_fixed_chip']:.3f} ms per sample "
        f"({_text(report['fixed_chip_model'])})",
        f"  figures: {_text(report['source'])}",
    ]
    return "\n".join(lines)


def check_report(report: Any, source: str = "report.json") -> None:
    """Raise ReportError naming the key when ``report`` lacks a field or has one of the wrong type."""
    _require(report, _TOP, source, optional=("chips_used_at_least",))
    if report.get("chips") is not None and not _is(report["chips"], _INT):
        raise ReportError(f"{source}: key 'chips' is {_short(report['chips'])}, expected {_INT} or null")
    for i, pop in enumerate(report["populations"]):
        where = f"{source}: populations[{i}]"
        _require(pop, _POPULATION, where)
        if not all(_is(d, _INT) for d in pop["shape"]):
            raise ReportError(f"{where}: key 'shape' is {_short(pop['shape'])}, expected whole numbers")
        load = pop.get("synaptic_events_per_ms_per_core")
        if load is not None and not _is(load, _NUM):
            raise ReportError(f"{where}: key 'synaptic_events_per_ms_per_core' is {_short(load)}, expected {_NUM}")
        _check_slices(pop, where)
        _check_core_use(pop.get("core_use"), f"{where}: key 'core_use'")
    limits = report.get("core_limits")
    if limits is not None and not (
        isinstance(limits, dict) and all(v is None or _is(v, _INT) for v in limits.values())
    ):
        raise ReportError(f"{source}: key 'core_limits' is {_short(limits)}, expected whole numbers or null")
    energy = report.get("energy")
    if energy:
        _require(energy, {**_ENERGY, "model": _STR, "source": _STR}, f"{source}: energy", optional=("model", "source"))


def _check_slices(pop: dict[str, Any], where: str) -> None:
    slices = pop["slices"]
    if not slices or not isinstance(slices[0], dict):
        raise ReportError(f"{where}: key 'slices' is {_short(slices)}, expected a non-empty list of objects")
    atoms = slices[0].get("atoms")
    if atoms is not None:
        if not (isinstance(atoms, list) and len(atoms) == 2 and all(_is(a, _INT) for a in atoms)):
            raise ReportError(f"{where}: slices[0] key 'atoms' is {_short(atoms)}, expected [first, end]")
        return
    per_core = pop.get("per_core")
    if not (isinstance(per_core, list) and len(per_core) >= 3 and all(_is(d, _INT) for d in per_core)):
        raise ReportError(f"{where}: key 'per_core' is {_short(per_core)}, expected [channels, rows, cols]")


CORE_USE = {"in_axons": "input axons", "out_axons": "output axons", "synapse_bits": "synapse memory bits"}


def _check_core_use(use: Any, where: str) -> None:
    """A population's optional per-core use (Loihi): lists of whole numbers under CORE_USE's keys."""
    if use is None:
        return
    if not isinstance(use, dict) or any(
        not isinstance(use.get(k), list) or not all(_is(v, _INT) for v in use[k]) for k in CORE_USE
    ):
        raise ReportError(f"{where} is {_short(use)}, expected lists of whole numbers per core")


def _core_use_lines(report: dict[str, Any]) -> list[str]:
    """The fullest core of each population against the machine's limits (Loihi)."""
    pops = [p for p in report["populations"] if p.get("core_use")]
    if not pops:
        return []
    limits = report.get("core_limits") or {}
    lines = ["", "fullest core of each population: " + ", ".join(CORE_USE.values()) + " (share of the core's limit)"]
    for pop in pops:
        parts = []
        for key in CORE_USE:
            most, limit = max(pop["core_use"][key], default=0), limits.get(key)
            parts.append(f"{most}" + (f" ({most / limit:.0%})" if limit else ""))
        lines.append(f"  {_text(pop['id'])[:24]:<24} " + ", ".join(parts))
    return lines


def _text(value: Any) -> str:
    """``value`` as text with control characters escaped (a report must not drive the terminal)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(value))


def _slices(pop: dict[str, Any]) -> str:
    first = pop["slices"][0]
    if "atoms" in first:
        return f"{len(pop['slices'])} x atoms [{first['atoms'][0]}, {first['atoms'][1]})..."
    return f"{len(pop['slices'])} tiles of {pop['per_core'][1]} rows x {pop['per_core'][2]} cols"


def format_report(report: dict[str, Any], source: str = "report.json") -> str:
    """The report in words: machine, instances and their arithmetic, per-population plan, energy.

    ``report`` is checked first (:func:`check_report`); ``source`` names it in errors. A
    MAC-mode report (``kind`` = ``mac``, BrainScaleS-2) has its own form.
    """
    if isinstance(report, dict) and report.get("kind") == "mac":
        return format_mac_report(report, source)
    check_report(report, source)
    lines = [
        f"{_text(report['target'])}: {_text(report['instances_arithmetic'])}",
        f"per instance: {report['neurons_per_instance']} neurons, {report['synapses_per_instance']} synapses, "
        f"{report['cores_per_instance']} cores; in all {report['cores']} cores on at least "
        f"{report.get('chips_used_at_least')} of {report.get('chips')} chips",
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
        load_text = "" if load is None else f"{load:.0f}"
        lines.append(
            f"{_text(pop['id'])[:24]:<24} {shape:<14} {pop['neurons']:>8} {pop['cores']:>6} "
            f"{pop['synapses_in']:>12} {load_text:>15}  {_slices(pop)}"
        )
    lines += _core_use_lines(report)
    energy = report.get("energy")
    if energy:
        lines += [
            "",
            f"energy: {energy['mj_per_inference']:.3g} mJ per inference ({energy['synaptic_events_per_inference']:.3g} "
            f"synaptic events, {energy['spikes_per_inference']:.3g} spikes; synapses {energy['synaptic_mj']:.3g} mJ, "
            f"neurons {energy['neuron_mj']:.3g} mJ); with the machine's idle power "
            f"{energy['mj_per_inference_with_idle']:.3g} mJ",
            f"  model: {_text(energy.get('model'))}",
            f"  figures: {_text(energy.get('source'))}",
        ]
    return "\n".join(lines)
