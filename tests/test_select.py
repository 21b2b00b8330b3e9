"""Selection: candidates from the published tables or the user's results, the sweep and its cache, the choice."""

import json
import shlex

import pytest

from mobilenet._io import InputError
from mobilenet.bench import select as sel
from mobilenet.bench.select import Candidate, Entry, LatencyCache, choose, entries_from_file, pareto_frontier
from mobilenet.published import V1_CHECKPOINTS, V1_CHECKPOINTS_UNREPRODUCED
from mobilenet.resolve import make_config
from tests.conftest import strict_json


def test_published_entries_cover_every_published_configuration_with_its_source():
    entries = sel.published_entries()
    assert len(entries) == 16 + 1 + 22 + 6  # TF-slim's V1 checkpoints, the paper's shallow V1, V2, V3
    assert {e.name for e in entries} == {"mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"}
    assert all(e.accuracy_source.startswith("ImageNet top-1, ") for e in entries)
    v2 = next(e for e in entries if e.name == "mobilenet_v2" and e.alpha == 1.0 and e.resolution == 224)
    assert v2.accuracy == 71.8
    assert "TF-slim" in v2.accuracy_source


def test_entries_from_the_weights_manifest():
    entries = entries_from_file("weights/manifest.json")
    assert len(entries) == 3
    assert all(e.resolution == 28 and (e.config.in_chans, e.config.num_classes) == (1, 10) for e in entries)
    assert all(e.config.small_input for e in entries)
    shallow = next(e for e in entries if e.name == "mobilenet_v1")
    assert dict(shallow.options) == {"shallow": True}
    assert shallow.accuracy == pytest.approx(95.08)


def test_entries_from_a_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        entries_from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        entries_from_file(tmp_path / "bad.json")
    (tmp_path / "nokeys.json").write_text(json.dumps([{"model": "mobilenet_v2"}]))
    with pytest.raises(ValueError, match="entry 0: needs 'model', 'alpha' and 'top1' \\(or 'config' and 'top1'\\)"):
        entries_from_file(tmp_path / "nokeys.json")


ALPHAS = {"a": 0.35, "b": 0.5, "c": 0.75, "d": 1.0, "e": 1.3}  # five members of one version, told apart by width
NAMES = {alpha: name for name, alpha in ALPHAS.items()}


def candidate(name, accuracy, latency, size):
    config = make_config("mobilenet_v2", alpha=ALPHAS[name])
    return Candidate(Entry(config, 224, accuracy, "test"), latency, "test", size, "test")


def named(c):
    return NAMES[c.entry.alpha]


CANDIDATES = [
    candidate("a", 60.0, 1.0, 1.0),
    candidate("b", 70.0, 5.0, 4.0),
    candidate("c", 72.0, 12.0, 3.0),  # too slow
    candidate("d", 75.0, 8.0, 9.0),  # too big
    candidate("e", 65.0, 6.0, 2.0),  # dominated by b
]


def test_choose_takes_the_most_accurate_within_both_budgets_and_says_why_the_others_lost():
    choice = choose(CANDIDATES, latency_ms=10, size_mb=5)
    assert named(choice.pick) == "b"
    reasons = {named(c): why for c, why in choice.reasons}
    assert "over the 5 MB budget" in reasons["d"]
    assert "over the 10 ms budget" in reasons["c"]
    assert [named(c) for c in choice.frontier] == ["a", "b", "d"]  # c: slower and less accurate than d
    data = choice.to_dict()
    assert (data["pick"]["name"], data["pick"]["alpha"]) == ("mobilenet_v2", 0.5)
    assert data["pick"]["config"] == make_config("mobilenet_v2", alpha=0.5).to_dict()  # the one record of the model
    assert len(data["candidates"]) == 5
    assert set(data["pick"]) >= {"name", "alpha", "resolution", "latency_ms", "size_mb", "accuracy", "accuracy_source"}


def test_choose_when_nothing_fits():
    choice = choose(CANDIDATES, latency_ms=0.5, size_mb=None)
    assert choice.pick is None
    assert "no member meets both budgets" in choice.message
    assert "the fastest is mobilenet_v2 0.35 @224" in choice.message
    with pytest.raises(ValueError, match="latency budget must be > 0"):
        choose(CANDIDATES, latency_ms=0, size_mb=None)


def test_pareto_frontier_drops_dominated_members():
    assert "e" not in {named(c) for c in pareto_frontier(CANDIDATES)}


TINY = [
    Entry(make_config("mobilenet_v3_small", alpha=0.35), 64, 50.0, "test"),
    Entry(make_config("mobilenet_v2", alpha=0.35), 64, 55.0, "test"),
]


def test_sweep_measures_once_then_reads_the_cache(tmp_path, monkeypatch):
    cache = LatencyCache.open(tmp_path, "machine", "torch", 1, 1)
    first = sel.sweep(TINY, "torch", threads=1, cache=cache, progress=False, rounds=3)
    assert all(c.latency_ms > 0 and c.size_mb > 0 and c.latency_source.startswith("measured: torch") for c in first)
    assert all("interleaved rounds" in c.latency_source for c in first)  # 3, or 6 where the machine was busy
    assert cache.path.is_file()
    stored = json.loads(cache.path.read_text())["entries"][TINY[0].key()]
    assert len(stored["rounds_ms"]) == len(stored["reference_ms"]) in (3, 6)  # the per-round data stays in the cache

    def no_measuring(*args, **kwargs):
        raise AssertionError("a cached candidate was measured again")

    monkeypatch.setattr("mobilenet.bench.select.time_pairs", no_measuring)
    reopened = LatencyCache.open(tmp_path, "machine", "torch", 1, 1)
    second = sel.sweep(TINY, "torch", threads=1, cache=reopened, progress=False)
    assert [c.latency_ms for c in second] == [c.latency_ms for c in first]
    assert LatencyCache.open(tmp_path, "another machine", "torch", 1, 1).data == {}  # per machine


def test_select_cli(tmp_path, capsys):
    from mobilenet.cli import main

    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            [
                {"model": "mobilenet_v3_small", "alpha": 0.35, "top1": 90.0},
                {"model": "mobilenet_v2", "alpha": 0.35, "top1": 91.0},
            ]
        )
    )
    args = [
        *shlex.split("select --latency-ms 1000 --size-mb 100 --accuracy"),
        str(results),
        *shlex.split("--backend torch --threads 1 --cache"),
        str(tmp_path / "cache"),
        "--measure-all",
    ]
    assert main([*args, "--json"]) == 0
    data = strict_json(capsys.readouterr().out)  # a measured candidate has no model's figure: null, not NaN
    assert data["pick"]["name"] == "mobilenet_v2"
    assert data["pick"]["accuracy_source"].startswith("fashion-mnist")
    assert len(data["candidates"]) == 2
    assert all(c["resolution"] == 28 for c in data["candidates"])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Pareto frontier" in out
    assert "pick: mobilenet_v2 0.35 @28" in out
    assert main([*args[:1], "--accuracy", str(results)]) == 2  # no budget
    assert "give a budget" in capsys.readouterr().err
    assert (
        main(
            [
                *shlex.split("select --latency-ms 0.0001 --accuracy"),
                str(results),
                *shlex.split("--backend torch --threads 1 --cache"),
                str(tmp_path / "cache"),
                "--measure-all",
            ]
        )
        == 1
    )
    assert "no member meets both budgets" in capsys.readouterr().out


def test_prediction_quality():
    measured = [1.0, 2.0, 3.0, 4.0]
    assert sel.prediction_quality(measured, [2.0, 4.0, 6.0, 8.0]) == {
        "spearman": pytest.approx(1.0),
        "median_abs_error": pytest.approx(1.0),
        "median_ratio": pytest.approx(2.0),
    }
    assert sel.prediction_quality(measured, [4.0, 3.0, 2.0, 1.0])["spearman"] == pytest.approx(-1.0)
    assert sel.prediction_quality([1.0, 1.0, 2.0], [1.0, 2.0, 3.0])["spearman"] == pytest.approx(0.866, abs=1e-3)
    with pytest.raises(ValueError, match="two equally long"):
        sel.prediction_quality([1.0], [1.0])


@pytest.mark.parametrize("row", V1_CHECKPOINTS, ids=lambda r: f"{r.alpha}-{r.resolution}")
def test_tfslim_v1_checkpoint_macs_reproduce_or_are_documented(row):
    from mobilenet.cost import profile

    counted = profile("mobilenet_v1", resolution=row.resolution, alpha=row.alpha, num_classes=1001).macs / 1e6
    if (row.alpha, row.resolution) in V1_CHECKPOINTS_UNREPRODUCED:
        assert abs(counted - row.macs_m) > 1  # still a mismatch: the note stays true
    else:
        assert abs(counted - row.macs_m) <= 1


def _results(tmp_path, rows):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"model": "mobilenet_v2", "alpha": 1.0, "top1": 150}], r"entry 0: top-1 must be a percentage in \[0, 100\]"),
        ([{"model": "mobilenet_v2", "alpha": 1.0, "top1": float("nan")}], "entry 0: top-1 must be a percentage"),
        ([{"model": "mobilenet_v2", "alpha": 1.0, "top1": "95"}], "entry 0: top-1 must be a percentage"),
        ([{"model": "mobilenet_v2", "alpha": 1.0, "top1": True}], "entry 0: top-1 must be a percentage"),
        (
            [{"model": "mobilenet_v2", "alpha": 1.0, "top1": 90}, {"model": "mobilenet_v2", "alpha": 1, "top1": 91}],
            "entries 0 and 1 are the same configuration",
        ),
        ([{"model": "mobilenet_v2", "alpha": -1, "top1": 90}], "entry 0: alpha"),
        ([{"model": "mobilenet_v9", "alpha": 1.0, "top1": 90}], "entry 0: unknown model"),
        ([{"model": "mobilenet_v2", "alpha": 1.0, "top1": 90, "options": {"bogus": 1}}], "entry 0: .*bogus"),
        ([{"model": "mobilenet_v2", "alpha": 1.0, "top1": 90, "resolution": 0}], "entry 0: resolution"),
        ([{"model": "mobilenet_v2", "alpha": 1.0, "top1": 90, "small_input": False}], "entry 0: resolution 28"),
    ],
)
def test_accuracy_file_refuses_what_would_rank_wrongly(tmp_path, rows, message):
    with pytest.raises(ValueError, match=f"accuracy file .*results.json.*{message}"):
        entries_from_file(_results(tmp_path, rows))


def test_accuracy_file_that_is_not_utf8_names_the_file(tmp_path):
    (tmp_path / "results.json").write_bytes(b"\xff\xfe[")
    with pytest.raises(ValueError, match=r"accuracy file .*results\.json is not JSON"):
        entries_from_file(tmp_path / "results.json")


MEASURED = {
    "median_ms": 1.0,
    "p10_ms": 0.9,
    "p90_ms": 1.1,
    "runs": 30,
    "spread": 1.2,
    "size_mb": 1.0,
    "measured_at": "2026-11-30 09:00",
}


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not utf-8",
        b"{not json",
        json.dumps({"entries": [MEASURED]}).encode(),
        json.dumps({"entries": {"good": MEASURED, "string": "1.0 ms"}}).encode(),
        json.dumps({"entries": {"good": MEASURED, "short": {"median_ms": 1.0}}}).encode(),
        json.dumps({"entries": {"good": MEASURED, "negative": MEASURED | {"median_ms": -1.0}}}).encode(),
        json.dumps([1, 2, 3]).encode(),
    ],
)
def test_a_broken_cache_is_set_aside_with_one_warning_and_rebuilt(tmp_path, capsys, content):
    path = LatencyCache.open(tmp_path, "machine", "torch", 1, 1).path
    path.write_bytes(content)
    cache = LatencyCache.open(tmp_path, "machine", "torch", 1, 1)
    err = capsys.readouterr().err
    assert err.count("warning") == 1
    assert str(path) in err
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1
    assert aside[0].read_bytes() == content
    assert cache.data == ({"good": MEASURED} if b'"good"' in content else {})
    cache.store("new", MEASURED)
    assert set(json.loads(path.read_text())["entries"]) == set(cache.data) | {"new"}
    assert LatencyCache.open(tmp_path, "machine", "torch", 1, 1).data == cache.data  # rebuilt: it reads clean


def test_concurrent_writers_merge_instead_of_overwriting(tmp_path):
    first = LatencyCache.open(tmp_path, "machine", "torch", 1, 1)
    second = LatencyCache.open(tmp_path, "machine", "torch", 1, 1)  # opened before either stored anything
    first.store("a", MEASURED)
    second.store("b", MEASURED | {"median_ms": 2.0})
    first.store("c", MEASURED | {"median_ms": 3.0})
    stored = json.loads(first.path.read_text())["entries"]
    assert {key: value["median_ms"] for key, value in stored.items()} == {"a": 1.0, "b": 2.0, "c": 3.0}


def test_concurrent_processes_lose_no_entry(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys; from mobilenet.bench.select import LatencyCache; "
        "c = LatencyCache.open(sys.argv[1], 'machine', 'torch', 1, 1); "
        "entry = {'median_ms': 1.0, 'p10_ms': 0.9, 'p90_ms': 1.1, 'runs': 30, 'spread': 1.2, 'size_mb': 1.0, "
        "'measured_at': 'now'}; [c.store(f'{sys.argv[2]}-{i}', entry) for i in range(25)]"
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), name]) for name in "ab"]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    stored = LatencyCache.open(tmp_path, "machine", "torch", 1, 1).data
    assert len(stored) == 50


def test_refresh_replaces_entries_backend_by_backend_and_an_interruption_keeps_the_rest(tmp_path, monkeypatch):
    caches = {b: LatencyCache.open(tmp_path, "machine", b, 1, 1) for b in ("torch", "torch-fused")}
    old = MEASURED | {"median_ms": 1000.0}
    for cache in caches.values():
        for entry in TINY:
            cache.store(entry.key(), old)
    import mobilenet.bench.timing as timing

    real, calls = timing.time_rounds, []

    def interrupt_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(timing, "time_rounds", interrupt_on_second)
    with pytest.raises(KeyboardInterrupt):
        sel.survey(TINY, ["torch", "torch-fused"], threads=1, caches=caches, progress=False, refresh=True, rounds=3)
    first = LatencyCache.open(tmp_path, "machine", "torch", 1, 1).data
    second = LatencyCache.open(tmp_path, "machine", "torch-fused", 1, 1).data
    assert all(first[e.key()]["median_ms"] < 1000.0 for e in TINY)  # its sweep ended: measured again, replaced
    assert all(second[e.key()] == old for e in TINY)  # interrupted: the earlier figures stay


def test_an_unwritable_cache_is_a_warning_and_the_sweep_goes_on(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    cache = LatencyCache.open(tmp_path / "file" / "cache", "machine", "torch", 1, 1)
    candidates = sel.sweep(TINY[:1], "torch", threads=1, cache=cache, progress=False, rounds=3)
    assert candidates[0].latency_ms > 0
    err = capsys.readouterr().err
    assert err.count("cannot be written") == 1
    assert "measuring without storing" in err


def test_a_zero_budget_is_refused_before_the_sweep(capsys, monkeypatch):
    from mobilenet import cli

    monkeypatch.setattr(cli, "_candidates", lambda *a, **k: pytest.fail("swept before checking the budget"))
    assert cli.main(["select", "--latency-ms", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "mobilenet select: error: argument --latency-ms: must be a number > 0, got '0'\n"  # one line


def test_each_backend_gets_the_accuracy_of_its_precision():
    """fp32 takes the float figure; int8 a published int8 figure with how it was quantized, or unknown; bf16 the
    float figure, labelled as carried over. A float figure is never presented as an int8 one."""
    entries = {(e.name, e.alpha, e.resolution, e.options): e for e in sel.published_entries()}
    v1 = entries["mobilenet_v1", 1.0, 224, ()]
    assert sel.accuracy_for(v1, "onnx") == (70.9, v1.accuracy_source, "published float")
    top1, source, kind = sel.accuracy_for(v1, "openvino-int8")
    assert (top1, kind) == (70.1, "published int8 (quantization-aware training)")
    assert "MobileNet_v1_*_quant" in source
    minimal = entries["mobilenet_v3_large", 1.0, 224, (("minimal", True),)]
    assert sel.accuracy_for(minimal, "onnx-int8")[0] == 71.3
    assert sel.accuracy_for(entries["mobilenet_v2", 1.0, 224, ()], "onnx-int8")[0] == 70.8  # TF's lineage first
    half = entries["mobilenet_v2", 0.5, 160, ()]
    assert sel.accuracy_for(half, "onnx-int8") == (None, sel.accuracy_for(half, "onnx-int8")[1], sel.UNKNOWN)
    top1, source, kind = sel.accuracy_for(half, "openvino-bf16")
    assert top1 == half.accuracy
    assert "bf16 keeps float accumulation" in source
    assert kind.endswith("carried to bf16")


def test_select_out_refuses_a_published_configuration(tmp_path):
    entry = sel.published_entries()[0]
    pick = sel._predicted(entry, "onnx", sel.accuracy_for(entry, "onnx"), None)
    with pytest.raises(InputError, match="no pretrained weights can be fetched here"):
        sel.write_pick(pick, tmp_path / "out")


def test_a_results_files_checkpoint_gets_its_int8_accuracy_measured_in_a_folder_of_its_own(monkeypatch):
    """Each (checkpoint, int8 backend) is quantized and evaluated in an empty folder of its own; fp32 takes the
    results file's figure; nothing is measured in predict mode."""
    from mobilenet.bench.latency_model import member_key

    entries = entries_from_file("weights/manifest.json")
    folders = []

    def fake_measure(entry, backend, directory):
        assert directory.is_dir()
        assert not any(directory.iterdir())
        folders.append(directory)
        return 90.0, "measured here", sel.MEASURED

    def fake_time_pairs(pairs, threads, rounds=5, progress=True, levels=None, done=None):
        row = {
            "median_ms": 1.0,
            "p10_ms": 1.0,
            "p90_ms": 1.0,
            "spread": 1.0,
            "runs": 3,
            "size_mb": 1.0,
            "measured_at": "now",
            "rounds_ms": [1.0] * 3,
        }
        return {(member_key(c, r), b): row for c, r, b in pairs}

    monkeypatch.setattr(sel, "measured_int8_accuracy", fake_measure)
    monkeypatch.setattr(sel, "time_pairs", fake_time_pairs)
    backends = ["onnx", "onnx-int8"]
    sel.survey(entries, backends, predict=True, progress=False, models=dict.fromkeys(backends))
    assert folders == []  # predict mode measures nothing
    found = sel.survey(entries, backends, progress=False, models={}, measure_all=True)
    assert len(folders) == len(set(folders)) == len(entries)  # one per checkpoint, for the one int8 backend
    assert [c.accuracy for c in found if c.backend == "onnx-int8"] == [90.0] * len(entries)
    assert [c.accuracy for c in found if c.backend == "onnx"] == [e.accuracy for e in entries]
