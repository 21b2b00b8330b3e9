"""One self-contained HTML file: the family on this machine, with its plots (PNG, inlined) and the tables behind them.

Sections: the pick for the budgets and the Pareto frontier of accuracy against latency (size as the marker); the
roofline of one member with every layer on it; the cost per layer kind of each version; how latency scales with α and
ρ against the α²ρ² law of the MACs; the candidates table. Nothing is fetched when the page opens.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

from mobilenet._io import check_output, write_text
from mobilenet.bench.select import Candidate, Choice
from mobilenet.cost.roofline import HardwareProfile, machine_id

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


def plot_pareto(choice: Choice, latency_ms: float | None, size_mb: float | None) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    largest = max(c.size_mb for c in choice.candidates) or 1.0
    for name, color in VERSION_COLORS.items():
        group = [c for c in choice.candidates if c.entry.name == name]
        if group:
            ax.scatter(
                [c.latency_ms for c in group],
                [c.entry.accuracy for c in group],
                s=[20 + 400 * c.size_mb / largest for c in group],
                color=color,
                alpha=0.6,
                label=name,
                edgecolors="k",
                linewidths=0.4,
            )
    frontier = choice.frontier
    ax.plot(
        [c.latency_ms for c in frontier], [c.entry.accuracy for c in frontier], "k--", lw=1, label="Pareto frontier"
    )
    if choice.pick is not None:
        ax.scatter(
            [choice.pick.latency_ms],
            [choice.pick.entry.accuracy],
            s=250,
            facecolors="none",
            edgecolors="k",
            linewidths=2,
            label=f"pick: {choice.pick.label}",
        )
    if latency_ms is not None:
        ax.axvline(latency_ms, color="grey", ls=":", label=f"latency budget {latency_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency, batch 1 (ms, log scale)")
    ax.set_ylabel("top-1 (%)")
    title = "Accuracy against latency on this machine (marker area: size)"
    ax.set_title(title + (f"; size budget {size_mb:g} MB" if size_mb is not None else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def plot_roofline(name: str, resolution: int, hardware: HardwareProfile, measure: bool) -> tuple[str, object, object]:
    """The roofline with every layer on it; with `measure`, each layer's achieved rate on this machine beside it."""
    from mobilenet import create_model
    from mobilenet.cost import profile
    from mobilenet.cost.roofline import roofline

    plt = _pyplot()
    roof = roofline(profile(name, resolution=resolution), hardware)
    check = None
    if measure:
        from mobilenet.bench.layers import check_roofline

        check = check_roofline(create_model(name), roof, runs=10)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    intensities = [row.intensity for row in roof.rows]
    low, high = min(intensities) / 2, max(intensities) * 2
    xs = [low, hardware.ridge, high]
    ax.plot(
        xs,
        [min(hardware.peak_macs_per_s, x * hardware.bandwidth_bytes_per_s) / 1e9 for x in xs],
        "k-",
        lw=1.5,
        label=f"roof: {hardware.peak_macs_per_s / 1e9:.0f} GMAC/s, {hardware.bandwidth_bytes_per_s / 1e9:.0f} GB/s",
    )
    kinds = sorted({row.kind for row in roof.rows})
    for kind in kinds:
        rows = [row for row in roof.rows if row.kind == kind]
        ax.scatter(
            [row.intensity for row in rows],
            [row.attainable_macs_per_s / 1e9 for row in rows],
            s=[10 + 200 * row.macs / max(r.macs for r in roof.rows) for row in rows],
            alpha=0.7,
            label=kind,
        )
    if check is not None:
        achieved = [row.macs / (t.measured_ms / 1e3) / 1e9 for row, t in zip(roof.rows, check.layers, strict=True)]
        ax.scatter([t.intensity for t in check.layers], achieved, marker="x", color="k", alpha=0.6,
                   label="achieved (eager PyTorch, PyTorch profiler)")  # fmt: skip
    ax.axvline(hardware.ridge, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per byte)")
    ax.set_ylabel("GMAC/s: attainable (dots), achieved (crosses)")
    ax.set_title(f"Roofline of {name} at {resolution} px: every conv and linear layer (marker area: MACs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig), roof, check


def plot_cost_by_kind(resolution: int = 224) -> tuple[str, dict[str, dict[str, dict[str, float]]], list[str]]:
    from mobilenet.cost import profile
    from mobilenet.cost.count import KINDS

    plt = _pyplot()
    shares = {name: profile(name, resolution=resolution).by_kind() for name in VERSION_COLORS}
    kinds = [kind for kind in KINDS if any(kind in by_kind for by_kind in shares.values())]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottoms = [0.0] * len(shares)
    for kind in kinds:
        values = [100 * shares[name].get(kind, {}).get("macs_share", 0.0) for name in shares]
        ax.bar(list(shares), values, bottom=bottoms, label=kind)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_ylabel("share of multiply-adds (%)")
    ax.set_title(f"Where the cost sits, per layer kind ({resolution} px, α = 1)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _png(fig), shares, kinds


def scaling_points(candidates: list[Candidate], name: str = "mobilenet_v2") -> list[dict[str, float]]:
    """Measured latency relative to α = 1, 224 px, against the MACs ratio, for the candidates of one version."""
    from mobilenet.cost import profile

    group = [c for c in candidates if c.entry.name == name and not c.entry.options]
    base = next((c for c in group if c.entry.alpha == 1.0 and c.entry.resolution == 224), None)
    if base is None:
        return []
    base_macs = profile(name, resolution=224, **base.entry.model_kwargs()).macs
    points = []
    for c in group:
        macs = profile(name, resolution=c.entry.resolution, **c.entry.model_kwargs()).macs
        law = c.entry.alpha**2 * (c.entry.resolution / 224) ** 2
        points.append(
            {
                "alpha": c.entry.alpha,
                "resolution": c.entry.resolution,
                "law": law,
                "macs_ratio": macs / base_macs,
                "latency_ratio": c.latency_ms / base.latency_ms,
            }
        )
    return points


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


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:14px}code{background:#f3f3f3;padding:1px 3px}"""

# Counts the plots that decoded, for the headless-browser test and for anyone checking the file.
SCRIPT = """window.addEventListener('load',function(){var imgs=document.querySelectorAll('img.plot');var ok=0;
imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0){ok++;}});document.body.setAttribute('data-plots',imgs.length);
document.body.setAttribute('data-plots-loaded',ok);});"""


def write_report(
    path: str | Path,
    choice: Choice,
    hardware: HardwareProfile,
    latency_ms: float | None = None,
    size_mb: float | None = None,
    backend: str = "onnx",
    roofline_model: str = "mobilenet_v2",
    measure_layers: bool = True,
) -> Path:
    """Render the report to `path` (written atomically) and return it."""
    check_output(path)  # before the measurements: a path that cannot be written fails now, not after them
    pareto = plot_pareto(choice, latency_ms, size_mb)
    roof_png, roof, check = plot_roofline(roofline_model, 224, hardware, measure_layers)
    kinds_png, shares, kinds = plot_cost_by_kind()
    points = scaling_points(choice.candidates)
    scaling_png = plot_scaling(points, "mobilenet_v2") if points else None

    def img(data: str, alt: str) -> str:
        return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    measured = choice.candidates[0].latency_source if choice.candidates else ""
    pick = html.escape(choice.message)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mobilenet: the family on this machine"
        f"</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
        "<h1>MobileNets on this machine</h1>",
        f"<p class='note'>{html.escape(machine_id())}; backend <code>{html.escape(backend)}</code>; "
        f"{time.strftime('%Y-%m-%d %H:%M')}. Latency: {html.escape(measured)}.</p>",
        f"<h2>The pick</h2><p><b>{pick}</b></p>",
        _table(
            ["alternative", "top-1 %", "why not"],
            [[c.label, f"{c.entry.accuracy:.1f}", why] for c, why in choice.reasons],
        ),
        "<h2>Accuracy against latency</h2>",
        img(pareto, "accuracy against latency"),
        _table(
            ["Pareto frontier", "latency ms", "size MB", "top-1 %"],
            [[c.label, f"{c.latency_ms:.2f}", f"{c.size_mb:.2f}", f"{c.entry.accuracy:.1f}"] for c in choice.frontier],
        ),
        f"<h2>Roofline of {roofline_model}</h2>",
        f"<p class='note'>Measured peak {hardware.peak_macs_per_s / 1e9:.1f} GMAC/s and bandwidth "
        f"{hardware.bandwidth_bytes_per_s / 1e9:.1f} GB/s ({html.escape(hardware.source)}); ridge "
        f"{hardware.ridge:.2f} MACs/byte. Predicted latency (fp32, unfused) {roof.predicted_ms:.2f} ms.</p>",
        img(roof_png, "roofline"),
        _table(
            ["bound", "layers", "MACs", "predicted ms"],
            [
                [bound, int(v["layers"]), f"{v['macs']:,}", f"{v['predicted_ms']:.3f}"]
                for bound, v in roof.by_bound().items()
            ],
        ),
    ]
    if check is not None:
        parts += [
            f"<p>Whole network: predicted {check.predicted_ms:.2f} ms, measured {check.measured_ms:.2f} ms (eager "
            "PyTorch, batch 1, median). Per kind, and the layers where they disagree most:</p>",
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
                    for k, v in check.by_kind().items()
                ],
            ),
            _table(
                ["layer", "kind", "bound", "predicted ms", "measured ms"],
                [[t.name, t.kind, t.bound, f"{t.predicted_ms:.3f}", f"{t.measured_ms:.3f}"] for t in check.worst(8)],
            ),
        ]
    parts += [
        "<h2>Cost per layer kind</h2>",
        img(kinds_png, "cost per layer kind"),
        _table(
            ["version", *kinds],
            [
                [name, *(f"{100 * by_kind.get(k, {}).get('macs_share', 0.0):.1f}%" for k in kinds)]
                for name, by_kind in shares.items()
            ],
        ),
    ]
    if scaling_png:
        parts += [
            "<h2>Scaling with α and ρ</h2>",
            img(scaling_png, "alpha rho scaling"),
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
                    for p in points
                ],
            ),
        ]
    parts += [
        "<h2>Every candidate</h2>",
        _table(
            ["member", "latency ms", "size MB", "top-1 %", "accuracy source"],
            [
                [c.label, f"{c.latency_ms:.2f}", f"{c.size_mb:.2f}", f"{c.entry.accuracy:.1f}", c.entry.accuracy_source]
                for c in sorted(choice.candidates, key=lambda c: c.latency_ms)
            ],
        ),
        "</body></html>",
    ]
    text = "\n".join(parts)
    return write_text(path, text)
