"""The HTML report: self-contained, every plot present, and rendered for real in headless Chromium."""

import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from mobilenet.bench.select import Candidate, Entry, choose
from mobilenet.cost.roofline import HardwareProfile
from mobilenet.report.data import ReportData, collect
from mobilenet.report.html import data_path, render_html, write_report
from mobilenet.resolve import make_config
from tests.conftest import strict_json

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def candidates():
    grid = [
        ("mobilenet_v2", a, r, 60 + 10 * a + r / 50, 2.0 * a * a * (r / 224) ** 2, 3.5 * a * a)
        for a in (0.5, 1.0)
        for r in (160, 224)
    ]
    grid += [("mobilenet_v3_small", 1.0, 224, 67.5, 1.2, 10.2), ("mobilenet_v1", 1.0, 224, 70.6, 3.3, 16.9)]
    return [
        Candidate(
            Entry(make_config(n, alpha=a), r, acc, "test"), ms, "measured: test", mb, "test", predicted_ms=ms * 1.05
        )
        for n, a, r, acc, ms, mb in grid
    ]


def latency_models(backend="onnx", threads=1):
    """A latency model for `backend` fitted to made-up figures (what the report draws does not depend on them)."""
    from mobilenet.bench.latency_model import calibration_members, fit, member_key

    members = [(c, r, 0.1 + len(member_key(c, r)) * c.alpha) for c, r in calibration_members()]
    return {backend: fit(members, backend, threads, "machine", "runtime 1", reference_ms=members[0][2])}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    choice = choose(candidates(), latency_ms=2.5, size_mb=5)
    path = tmp_path_factory.mktemp("report") / "report.html"
    data = collect(choice, HardwareProfile.given(100, 50), 2.5, 5, models=latency_models())
    return write_report(path, data), choice


def test_report_is_self_contained_with_every_plot_and_table(report):
    path, choice = report
    text = path.read_text()
    assert text.count('<img class="plot"') == 5  # pareto, roofline, cost per kind, alpha/rho scaling, latency model
    assert not re.search(r"""(src|href)=["']?https?:""", text)  # nothing is fetched when the page opens
    headings = (
        "Accuracy against latency",
        "Roofline of mobilenet_v2",
        "Cost per layer kind",
        "Scaling",
        "The latency models",
    )
    for heading in headings:
        assert heading in text
    assert choice.pick.label in text
    assert text.count("<table>") >= 5


def test_report_renders_in_headless_chromium(report, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; CI installs Debian's chromium for this test (.ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    path, _ = report
    # The test's own script counts the plots that decoded; the user's page carries no script.
    counting = (
        "<script>window.addEventListener('load',function(){var imgs=document.querySelectorAll('img.plot');"
        "var ok=0;imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0){ok++;}});"
        "document.body.setAttribute('data-plots',imgs.length);"
        "document.body.setAttribute('data-plots-loaded',ok);});</script>"
    )
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text().replace("</head>", counting + "</head>", 1))
    url = probe.resolve().as_uri()
    dom = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'data-plots="5"' in dom
    assert 'data-plots-loaded="5"' in dom  # every inlined PNG decoded in the browser
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, "--window-size=1200,1600", f"--screenshot={shot}", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image, ImageStat

    image = Image.open(shot).convert("L")
    non_white = sum(count for level, count in enumerate(image.histogram()) if level < 240)
    assert non_white > 0.03 * image.width * image.height  # text and plots, not a blank page
    assert ImageStat.Stat(image).stddev[0] > 10


def test_report_cli_in_fast_mode(tmp_path, capsys):
    """--predict with the latency model stored for this machine: nothing is timed, every figure says predicted."""
    from mobilenet.bench.latency_model import model_path, store_model
    from mobilenet.cli import main
    from mobilenet.cost.roofline import machine_id
    from mobilenet.deploy.backends import runtime_version

    for backend, model in latency_models("onnx", 1).items():
        store_model(model, model_path(tmp_path, machine_id(), backend, runtime_version(backend), 1))
    out = tmp_path / "r.html"
    assert (
        main(
            [
                *shlex.split("report --out"),
                str(out),
                *shlex.split("--predict --models mobilenet_v2 mobilenet_v3_small --backend onnx --threads 1"),
                "--cache",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    assert out.is_file()
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert "predicted: latency model here (onnx, runtime 1, 1 thread(s))" in text
    assert "The latency models" in text


def test_the_page_carries_no_script(report):
    assert "<script" not in report[0].read_text()


def test_the_roofline_shown_is_the_picks_at_its_own_resolution(report):
    path, choice = report
    data = ReportData.load(data_path(path))
    assert data.roofline_model == choice.pick.label
    assert data.roofline["name"] == choice.pick.entry.name
    assert data.roofline["resolution"] == choice.pick.entry.resolution
    assert f"Roofline of {choice.pick.label}" in path.read_text()


def test_the_page_is_drawn_again_from_its_saved_data_without_measuring(report, tmp_path, monkeypatch):
    path, _ = report
    import mobilenet.report.data

    for name in ("profile", "roofline", "check_roofline", "build"):
        monkeypatch.setattr(mobilenet.report.data, name, lambda *a, **k: pytest.fail("measured while drawing"))
    strict_json(data_path(path).read_text())  # readable by more than Python: no NaN for a figure not measured
    data = ReportData.load(data_path(path))
    assert render_html(data) == path.read_text()  # the same page, from the data alone
    from mobilenet.cli import main

    assert main(["report", "--data", str(data_path(path)), "--out", str(tmp_path / "again.html")]) == 0
    assert (tmp_path / "again.html").read_text() == path.read_text()


def test_saved_data_of_another_layout_is_refused(tmp_path):
    (tmp_path / "old.json").write_text('{"format": 0}')
    with pytest.raises(ValueError, match=r"old\.json is not report data of format 2"):
        ReportData.load(tmp_path / "old.json")


def test_data_saved_by_the_one_backend_version_is_drawn_again(report, tmp_path):
    """Format 1 (before candidates had backends): upgraded on load, drawn with its one backend."""
    path, _ = report
    data = json.loads(data_path(path).read_text())
    data["format"] = 1
    del data["frontiers"], data["latency_model"]
    choice = data["choice"]
    for row in [*choice["candidates"], *choice["frontier"], *choice["alternatives"], choice["pick"]]:
        for key in ("backend", "measured", "accuracy_kind"):
            row.pop(key)
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = ReportData.load(tmp_path / "old.json")
    assert old.format == 2
    assert list(old.frontiers) == [data["backend"]]
    assert "Pareto frontier" in render_html(old)
