"""What the report shows, collected apart from drawing it: `collect` profiles and measures once and returns a
`ReportData` of plain JSON values; `mobilenet.report.html.render_html` draws the page from it alone. The data is saved
beside the page, so a page can be drawn again (another style, a fixed plot) without measuring anything."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mobilenet._io import InputError, write_text
from mobilenet.bench.layers import check_roofline
from mobilenet.bench.select import Candidate, Choice, pareto_frontier
from mobilenet.cost.count import KINDS, profile
from mobilenet.cost.roofline import HardwareProfile, machine_id, roofline
from mobilenet.model import build
from mobilenet.specs import BASE_RESOLUTION, VERSIONS

FORMAT = 2  # the version of the saved data's layout (2: candidates per backend, frontiers; 1 is read and upgraded)
SCALING_MODEL = "mobilenet_v2"  # the version whose alpha/rho grid the scaling section plots


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, as JSON values (dicts in the `to_dict` layouts of their sources)."""

    created: str
    machine: str
    backend: str
    latency_budget_ms: float | None
    size_budget_mb: float | None
    choice: dict  # bench.select.Choice.to_dict()
    hardware: dict  # cost.roofline.HardwareProfile.to_dict()
    roofline: dict  # cost.roofline.Roofline.to_dict() of `roofline_model`
    roofline_model: str  # e.g. "mobilenet_v2 1.0 @224": the member whose roofline is shown
    measured: dict | None  # bench.layers.RooflineCheck.to_dict() with its "worst" layers, or None
    cost_by_kind: dict  # version -> CostReport.by_kind() at 224 px, alpha 1
    scaling: list  # scaling_points(): latency against the alpha^2 rho^2 law, one dict per member of SCALING_MODEL
    frontiers: dict = field(default_factory=dict)  # backend -> its Pareto frontier, Candidate.to_dict() each
    format: int = FORMAT
    latency_model: dict = field(default_factory=dict)  # backend -> LatencyModel.to_dict() and its "describe"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "report data") -> ReportData:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{source} is not JSON ({error})") from None
        names = {f.name for f in fields(cls)}
        if isinstance(data, dict) and data.get("format") == 1 and set(data) == names - {"frontiers", "latency_model"}:
            data = _upgrade_from_1(data)
        if isinstance(data, dict) and data.get("format") == FORMAT and "latency_model" not in data:
            data = data | {"latency_model": {}}  # written before the latency models: nothing to draw
        if not isinstance(data, dict) or data.get("format") != FORMAT or set(data) != names:
            raise InputError(f"{source} is not report data of format {FORMAT} (written by `mobilenet report`)")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> Path:
        return write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReportData:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"{path} cannot be read ({error})") from None
        return cls.from_json(text, source=str(path))


def _upgrade_from_1(data: dict) -> dict:
    """Format 1 (one backend, every candidate measured) in format 2's layout."""
    choice = data["choice"]
    rows = [
        *choice["candidates"],
        *choice["frontier"],
        *choice["alternatives"],
        *([choice["pick"]] * bool(choice["pick"])),
    ]
    for row in rows:
        row.setdefault("backend", data["backend"])
        row.setdefault("measured", True)
        row.setdefault("accuracy_kind", "published float")
    return data | {"format": FORMAT, "frontiers": {data["backend"]: choice["frontier"]}}


def scaling_points(candidates: list[Candidate], name: str = SCALING_MODEL) -> list[dict[str, float]]:
    """Measured latency relative to alpha = 1 at 224 px, against the MACs ratio, for the measured candidates of one
    version in one backend (none when the sweep did not measure them: `--measure-all`)."""
    backends = [c.backend for c in candidates]
    backend = "onnx" if "onnx" in backends else (backends or [""])[0]  # one runtime's figures
    group = [
        c for c in candidates if c.entry.name == name and not c.entry.options and c.backend == backend and c.measured
    ]  # a predicted latency would only echo the roofline's MACs
    base = next((c for c in group if c.entry.alpha == 1.0 and c.entry.resolution == BASE_RESOLUTION), None)
    if base is None:
        return []
    base_macs = profile(base.entry.config, resolution=BASE_RESOLUTION).macs
    points = []
    for c in group:
        macs = profile(c.entry.config, resolution=c.entry.resolution).macs
        points.append(
            {
                "alpha": c.entry.alpha,
                "resolution": c.entry.resolution,
                "law": c.entry.alpha**2 * (c.entry.resolution / BASE_RESOLUTION) ** 2,
                "macs_ratio": macs / base_macs,
                "latency_ratio": c.latency_ms / base.latency_ms,
            }
        )
    return points


def collect(
    choice: Choice,
    hardware: HardwareProfile,
    latency_ms: float | None = None,
    size_mb: float | None = None,
    backend: str | list[str] | None = None,
    model: Candidate | None = None,
    measure: bool = True,
    models: dict | None = None,
) -> ReportData:
    """Profile and measure what the page shows. The roofline is of `model` (default: the pick; the first frontier
    member when nothing fits), at its own width, options and resolution; with `measure`, each of its layers is also
    timed in eager PyTorch on this machine (`mobilenet.bench.layers.check_roofline`). `models`: the backends'
    latency models (`mobilenet.bench.latency_model.LatencyModel`), drawn against what was measured."""
    backends = sorted({c.backend for c in choice.candidates})
    shown = model or choice.pick or choice.frontier[0]
    entry = shown.entry
    roof = roofline(profile(entry.config, resolution=entry.resolution), hardware)
    measured = None
    if measure:
        check = check_roofline(build(entry.config), roof, runs=10)
        measured = check.to_dict() | {"worst": [asdict(t) for t in check.worst(8)]}
    cost_by_kind = {}
    for name in VERSIONS:
        by_kind = profile(name, resolution=BASE_RESOLUTION).by_kind()
        cost_by_kind[name] = {kind: by_kind[kind] for kind in KINDS if kind in by_kind}
    return ReportData(
        created=time.strftime("%Y-%m-%d %H:%M"),
        machine=machine_id(),
        backend=", ".join(backend) if isinstance(backend, list) else backend or ", ".join(backends),
        frontiers={
            b: [c.to_dict() for c in pareto_frontier([c for c in choice.candidates if c.backend == b])]
            for b in backends
        },
        latency_budget_ms=latency_ms,
        size_budget_mb=size_mb,
        choice=choice.to_dict(),
        hardware=hardware.to_dict(),
        roofline=roof.to_dict(),
        roofline_model=shown.label,
        measured=measured,
        cost_by_kind=cost_by_kind,
        scaling=scaling_points(choice.candidates),
        latency_model={b: m.to_dict() | {"describe": m.describe()} for b, m in (models or {}).items()},
    )
