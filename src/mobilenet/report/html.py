"""One self-contained HTML file: the family on this machine, with its plots (PNG, inlined) and the tables behind them.

Sections: the pick for the budgets and the Pareto frontier of accuracy against latency (size as the marker); the
roofline of one member with every layer on it; the cost per layer kind of each version; how latency scales with α and
ρ against the α²ρ² law of the MACs; the candidates table. Nothing is fetched when the page opens.

`render_html(data)` draws the page from a `ReportData` (`mobilenet.report.data.collect`) and nothing else: no
profiling or measuring happens here, so a saved `report.json` can be drawn again at any time.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from mobilenet._io import check_output, write_text
from mobilenet.report.data import SCALING_MODEL, ReportData

VERSION_COLORS = {
    "mobilenet_v1": "#1f77b4",
    "mobilenet_v2": "#ff7f0e",
    "mobilenet_v3_large": "#2ca02c",
    "mobilenet_v3_small": "#d62728",
}


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


BACKEND_MARKERS = {
    "onnx": "o",
    "onnx-int8": "s",
    "onnx-int8-portable": "P",
    "openvino": "^",
    "openvino-bf16": "D",
    "openvino-int8": "v",
    "torch": "x",
    "torch-fused": "+",
    "compile": "*",
}


def plot_pareto(choice: dict, latency_ms: float | None, size_mb: float | None, frontiers: dict | None = None) -> str:
    """Accuracy against latency of every candidate of known accuracy (`Choice.to_dict()`): colour by version, marker
    by backend, filled when measured and hollow when predicted; one frontier line per backend (`frontiers`), and the
    pick."""
    plt = _pyplot()
    candidates = [c for c in choice["candidates"] if c["accuracy"] is not None]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    largest = max((c["size_mb"] for c in candidates), default=1.0) or 1.0
    for name, color in VERSION_COLORS.items():
        for backend, marker in BACKEND_MARKERS.items():
            for measured in (True, False):
                group = [
                    c
                    for c in candidates
                    if (c["name"], c["backend"], c.get("measured", True)) == (name, backend, measured)
                ]
                if not group:
                    continue
                ax.scatter(
                    [c["latency_ms"] for c in group],
                    [c["accuracy"] for c in group],
                    s=[20 + 300 * c["size_mb"] / largest for c in group],
                    marker=marker,
                    facecolors=color if measured else "none",
                    edgecolors=color if not measured else "k",
                    alpha=0.7,
                    linewidths=0.8,
                )
    for name, color in VERSION_COLORS.items():  # legend: versions by colour, backends by marker
        ax.scatter([], [], color=color, label=name)
    for backend in sorted({c["backend"] for c in candidates}):
        ax.scatter([], [], marker=BACKEND_MARKERS.get(backend, "o"), color="grey", label=backend)
    for backend, frontier in sorted((frontiers or {"": choice["frontier"]}).items()):
        ax.plot(
            [c["latency_ms"] for c in frontier],
            [c["accuracy"] for c in frontier],
            ls="--",
            lw=1,
            label=f"frontier {backend}".strip(),
        )
    pick = choice["pick"]
    if pick is not None:
        ax.scatter(
            [pick["latency_ms"]],
            [pick["accuracy"]],
            s=250,
            facecolors="none",
            edgecolors="k",
            linewidths=2,
            label=f"pick: {pick['label']}",
        )
    if latency_ms is not None:
        ax.axvline(latency_ms, color="grey", ls=":", label=f"latency budget {latency_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency, batch 1 (ms, log scale)")
    ax.set_ylabel("top-1 (%)")
    title = "Accuracy against latency on this machine (area: size; hollow: predicted, not measured)"
    ax.set_title(title + (f"; size budget {size_mb:g} MB" if size_mb is not None else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    return _png(fig)


def plot_roofline(roof: dict, hardware: dict, label: str, measured: dict | None) -> str:
    """The roofline (`Roofline.to_dict()`) with every layer on it; each layer's achieved rate beside it when
    `measured` (`RooflineCheck.to_dict()`) is given."""
    plt = _pyplot()
    rows, peak, bandwidth = roof["layers"], hardware["peak_macs_per_s"], hardware["bandwidth_bytes_per_s"]
    ridge = peak / bandwidth
    fig, ax = plt.subplots(figsize=(9, 5.5))
    intensities = [row["intensity"] for row in rows]
    xs = [min(intensities) / 2, ridge, max(intensities) * 2]
    ax.plot(
        xs,
        [min(peak, x * bandwidth) / 1e9 for x in xs],
        "k-",
        lw=1.5,
        label=f"roof: {peak / 1e9:.0f} GMAC/s, {bandwidth / 1e9:.0f} GB/s",
    )
    largest = max(row["macs"] for row in rows)
    for kind in sorted({row["kind"] for row in rows}):
        group = [row for row in rows if row["kind"] == kind]
        ax.scatter(
            [row["intensity"] for row in group],
            [row["attainable_macs_per_s"] / 1e9 for row in group],
            s=[10 + 200 * row["macs"] / largest for row in group],
            alpha=0.7,
            label=kind,
        )
    if measured is not None:
        timings = measured["layers"]
        achieved = [row["macs"] / (t["measured_ms"] / 1e3) / 1e9 for row, t in zip(rows, timings, strict=True)]
        ax.scatter(
            [t["intensity"] for t in timings],
            achieved,
            marker="x",
            color="k",
            alpha=0.6,
            label="achieved (eager PyTorch, each layer timed by hooks)",
        )
    ax.axvline(ridge, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per byte)")
    ax.set_ylabel("GMAC/s: attainable (dots), achieved (crosses)")
    ax.set_title(f"Roofline of {label}: every conv and linear layer (marker area: MACs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_cost_by_kind(shares: dict[str, dict[str, dict[str, float]]], kinds: list[str]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottoms = [0.0] * len(shares)
    for kind in kinds:
        values = [100 * shares[name].get(kind, {}).get("macs_share", 0.0) for name in shares]
        ax.bar(list(shares), values, bottom=bottoms, label=kind)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_ylabel("share of multiply-adds (%)")
    ax.set_title("Where the cost sits, per layer kind (224 px, α = 1)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _png(fig)


def plot_scaling(points: list[dict[str, float]], name: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for alpha in sorted({p["alpha"] for p in points}):
        group = sorted((p for p in points if p["alpha"] == alpha), key=lambda p: p["resolution"])
        ax.plot([p["law"] for p in group], [p["latency_ratio"] for p in group], "o-", label=f"α = {alpha} (ρ varies)")
    ax.plot([0.01, 2], [0.01, 2], "k--", lw=1, label="latency ∝ α²ρ²")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("α²ρ² (relative to α = 1, 224 px)")
    ax.set_ylabel("measured latency (relative)")
    ax.set_title(f"{name}: latency against the α²ρ² law")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_latency_model(models: dict[str, dict], candidates: list[dict]) -> str:
    """Predicted against measured latency, per backend: the calibration members hollow (fitted), every candidate
    measured in this run filled (predicted before it was timed), with the line of agreement and +-10%."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    values = []
    for i, (backend, model) in enumerate(sorted(models.items())):
        color = f"C{i}"
        cal = [(c["measured_ms"], c["fitted_ms"]) for c in model["calibration"]]
        ax.scatter(*zip(*cal, strict=True), facecolors="none", edgecolors=color, label=f"{backend}: calibration")
        scored = [
            (c["latency_ms"], c["predicted_ms"])
            for c in candidates
            if c["backend"] == backend and c.get("measured", True) and (c.get("predicted_ms") or 0) > 0
        ]
        if scored:
            ax.scatter(*zip(*scored, strict=True), color=color, label=f"{backend}: measured candidates")
        values += [v for pair in cal + scored for v in pair]
    low, high = min(values) * 0.8, max(values) * 1.25
    ax.plot([low, high], [low, high], "k-", lw=1, label="predicted = measured")
    for factor in (0.9, 1.1):
        ax.plot([low, high], [low * factor, high * factor], "k--", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title("The latency models against measurement (dashed: ±10%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _png(fig)


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:14px}code{background:#f3f3f3;padding:1px 3px}"""


def render_html(data: ReportData) -> str:
    """The page, drawn from `data` alone."""
    choice, hardware, roof, measured = data.choice, data.hardware, data.roofline, data.measured
    kinds = list(dict.fromkeys(kind for by_kind in data.cost_by_kind.values() for kind in by_kind))

    def img(png: str, alt: str) -> str:
        return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'

    def percent(value: float | None) -> str:
        return "unknown" if value is None else f"{value:.1f}"

    def row(c: dict) -> list[object]:
        state = "measured" if c.get("measured", True) else "predicted"
        return [c["label"], f"{c['latency_ms']:.2f}", f"{c['size_mb']:.2f}", percent(c["accuracy"]), state]

    measured_count = sum(c.get("measured", True) for c in choice["candidates"])
    predicted = next((c["latency_source"] for c in choice["candidates"] if not c.get("measured", True)), "")
    latency_source = (
        f"{measured_count} of {len(choice['candidates'])} candidates measured (what decides the pick), "
        f"the others drawn hollow: {predicted}"
    )
    ridge = hardware["peak_macs_per_s"] / hardware["bandwidth_bytes_per_s"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mobilenet: the family on this machine"
        f"</title><style>{STYLE}</style></head><body>",
        "<h1>MobileNets on this machine</h1>",
        f"<p class='note'>{html.escape(data.machine)}; backends <code>{html.escape(data.backend)}</code>; "
        f"{html.escape(data.created)}. Latency: {html.escape(latency_source)}.</p>",
        f"<h2>The pick</h2><p><b>{html.escape(choice['message'])}</b></p>",
        _table(
            ["alternative", "top-1 %", "why not"],
            [[c["label"], percent(c["accuracy"]), c["why_not"]] for c in choice["alternatives"]],
        ),
        "<h2>Accuracy against latency</h2>",
        img(
            plot_pareto(choice, data.latency_budget_ms, data.size_budget_mb, data.frontiers), "accuracy against latency"
        ),
        _table(
            ["Pareto frontier", "latency ms", "size MB", "top-1 %", "latency"], [row(c) for c in choice["frontier"]]
        ),
        f"<h2>Roofline of {html.escape(data.roofline_model)}</h2>",
        f"<p class='note'>Peak {hardware['peak_macs_per_s'] / 1e9:.1f} GMAC/s and bandwidth "
        f"{hardware['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s ({html.escape(hardware['source'])}); ridge "
        f"{ridge:.2f} MACs/byte. Predicted latency (fp32, unfused) {roof['predicted_ms']:.2f} ms.</p>",
        img(plot_roofline(roof, hardware, data.roofline_model, measured), "roofline"),
        _table(
            ["bound", "layers", "MACs", "predicted ms"],
            [
                [bound, int(v["layers"]), f"{v['macs']:,}", f"{v['predicted_ms']:.3f}"]
                for bound, v in roof["by_bound"].items()
            ],
        ),
    ]
    if measured is not None:
        parts += [
            f"<p>Whole network: predicted {measured['predicted_ms']:.2f} ms, measured {measured['measured_ms']:.2f} ms "
            "(eager PyTorch, batch 1, median). Per kind, and the layers where they disagree most:</p>",
            _table(
                ["kind", "layers", "predicted ms", "measured ms", "measured / predicted"],
                [
                    [
                        k,
                        int(v["layers"]),
                        f"{v['predicted_ms']:.3f}",
                        f"{v['measured_ms']:.3f}",
                        f"{v['measured_ms'] / max(v['predicted_ms'], 1e-9):.1f}",
                    ]
                    for k, v in measured["by_kind"].items()
                ],
            ),
            _table(
                ["layer", "kind", "bound", "predicted ms", "measured ms"],
                [
                    [t["name"], t["kind"], t["bound"], f"{t['predicted_ms']:.3f}", f"{t['measured_ms']:.3f}"]
                    for t in measured["worst"]
                ],
            ),
        ]
    parts += [
        "<h2>Cost per layer kind</h2>",
        img(plot_cost_by_kind(data.cost_by_kind, kinds), "cost per layer kind"),
        _table(
            ["version", *kinds],
            [
                [name, *(f"{100 * by_kind.get(k, {}).get('macs_share', 0.0):.1f}%" for k in kinds)]
                for name, by_kind in data.cost_by_kind.items()
            ],
        ),
    ]
    if data.scaling:
        parts += [
            "<h2>Scaling with α and ρ</h2>",
            img(plot_scaling(data.scaling, SCALING_MODEL), "alpha rho scaling"),
            _table(
                ["α", "px", "α²ρ²", "MACs ratio", "latency ratio"],
                [
                    [
                        p["alpha"],
                        p["resolution"],
                        f"{p['law']:.3f}",
                        f"{p['macs_ratio']:.3f}",
                        f"{p['latency_ratio']:.3f}",
                    ]
                    for p in data.scaling
                ],
            ),
        ]
    else:
        parts += [
            "<h2>Scaling with α and ρ</h2><p class='note'>Not measured in this run: the survey timed only what could "
            "decide the pick. <code>--measure-all</code> times every member and draws measured latency against the "
            "α²ρ² law here.</p>"
        ]
    if data.latency_model:
        parts += [
            "<h2>The latency models</h2><p class='note'>Each backend's latency, predicted from the member's layers "
            "(per-kind cost of multiply-adds and bytes, per layer and per call), calibrated on members off the "
            "published grid timed here. Hollow: the calibration members (fitted); filled: the candidates this run "
            "measured, predicted before they were timed.</p>",
            img(plot_latency_model(data.latency_model, choice["candidates"]), "predicted against measured latency"),
            _table(
                ["backend", "latency model"],
                [[backend, model["describe"]] for backend, model in sorted(data.latency_model.items())],
            ),
        ]
    parts += [
        "<h2>Every candidate</h2>",
        _table(
            ["member", "latency ms", "size MB", "top-1 %", "latency", "accuracy (kind: source)"],
            [
                [*row(c), f"{c.get('accuracy_kind', '')}: {c['accuracy_source']}"]
                for c in sorted(choice["candidates"], key=lambda c: c["latency_ms"])
            ],
        ),
        "</body></html>",
    ]
    return "\n".join(parts)


def data_path(page: str | os.PathLike) -> Path:
    """Where the data of the page at `page` is saved: beside it, `report.html` -> `report.json`."""
    return Path(page).with_suffix(".json")


def write_report(path: str | os.PathLike, data: ReportData) -> Path:
    """Write the page drawn from `data` to `path` and the data beside it (`data_path`), each atomically."""
    check_output(path)
    check_output(data_path(path))
    page = write_text(path, render_html(data))
    data.save(data_path(path))
    return page
