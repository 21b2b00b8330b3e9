"""BN folding and ONNX export, verified against PyTorch."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet.deploy import export_onnx, fuse, read_metadata
from mobilenet.deploy.folding import is_fused


def with_random_statistics(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_fused_model_computes_the_same_function(name):
    model = with_random_statistics(mobilenet.create_model(name, alpha=0.5, num_classes=10))
    fused = fuse(model)
    assert is_fused(fused)
    assert not is_fused(model)  # the original is untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = model(x), fused(x)
    assert (got - expected).abs().max().item() <= 1e-5 * expected.abs().max().item()
    assert "blocks.1.dw.conv" in dict(fused.named_modules())  # names stay stable


def test_fuse_rejects_other_modules():
    with pytest.raises(TypeError, match="MobileNet"):
        fuse(nn.Conv2d(3, 3, 1))


def test_export_is_checked_and_carries_metadata(tmp_path):
    model = with_random_statistics(
        mobilenet.create_model("mobilenet_v3_small", alpha=0.35, num_classes=10, in_chans=1, small_input=True)
    )
    report = export_onnx(model, tmp_path / "m.onnx", 28, metadata={"labels": json.dumps(list("abcdefghij"))})
    assert report.relative_diff < 1e-4
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["input_size"] == "28"
    assert meta["in_chans"] == "1"
    assert json.loads(meta["labels"])[0] == "a"
    assert json.loads(meta["mobilenet.config"])["name"] == "mobilenet_v3_small"

    import onnx
    import onnxruntime as ort

    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version >= 17
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 28, 28)  # a batch size other than the export's: the batch dimension is dynamic
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    assert abs(got - expected).max() <= 1e-4 * abs(expected).max()


def test_export_rejects_bad_requests(tmp_path):
    model = mobilenet.create_model("mobilenet_v2", alpha=0.35)
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(model, tmp_path / "m.onnx", 224, opset=13)
    with pytest.raises(ValueError, match="too small"):
        export_onnx(model, tmp_path / "m.onnx", 16)
    assert not (tmp_path / "m.onnx").exists()


def test_export_cli_from_a_training_checkpoint(tmp_path, capsys):
    from mobilenet.cli import main
    from mobilenet.weights import save

    model = mobilenet.create_model("mobilenet_v3_small", alpha=0.35, num_classes=10, in_chans=1, small_input=True)
    checkpoint = save(
        model,
        tmp_path / "best.safetensors",
        metadata={
            "classes": json.dumps([f"c{i}" for i in range(10)]),
            "image_size": "28",
            "mean": "[0.286]",
            "std": "[0.353]",
        },
    )
    code = main(["export", str(checkpoint), "--out", str(tmp_path / "m.onnx")])
    out = capsys.readouterr().out
    assert code == 0
    assert "28x28" in out
    assert "checked in ONNX Runtime" in out
    meta = read_metadata(tmp_path / "m.onnx")
    assert json.loads(meta["labels"])[9] == "c9"
    assert json.loads(meta["mean"]) == [0.286]


def test_read_metadata_of_a_non_onnx_file(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        read_metadata(tmp_path / "x.onnx")


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    model = with_random_statistics(
        mobilenet.create_model("mobilenet_v2", alpha=0.35, num_classes=10, in_chans=1, small_input=True)
    )
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_onnx(
        model,
        path,
        28,
        metadata={"labels": json.dumps([str(i) for i in range(10)]), "mean": "[0.286]", "std": "[0.353]"},
    )
    return model, path


@pytest.fixture(scope="module")
def fashion():
    from mobilenet.data import load_dataset

    return load_dataset("fashion-mnist", "train")


def test_quantized_model_is_int8_qdq_per_channel_and_close_to_fp32(fp32_onnx, fashion, tmp_path):
    import onnx

    from mobilenet.data import normalize
    from mobilenet.deploy.quantize import quantize_onnx
    from mobilenet.deploy.runtime import OnnxModel

    model, path = fp32_onnx
    out = quantize_onnx(path, tmp_path / "m.int8.onnx", fashion, samples=64)
    graph = onnx.load(str(out)).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    initializers = {init.name: init for init in graph.initializer}

    def is_int8_conv_weight(name: str) -> bool:
        init = initializers.get(name)
        return init is not None and init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 4

    weight_dq = [n for n in graph.node if n.op_type == "DequantizeLinear" and is_int8_conv_weight(n.input[0])]
    assert weight_dq, "conv weights are stored as int8"
    assert all(len(initializers[n.input[1]].dims) == 1 for n in weight_dq)  # one scale per output channel
    assert out.stat().st_size < 0.45 * path.stat().st_size
    assert OnnxModel(out).labels == [str(i) for i in range(10)]  # metadata survives quantization

    x = normalize(fashion.images[:256], (0.286,), (0.353,))
    with torch.no_grad():
        reference = model(x)
    quantized = OnnxModel(out)(x)
    sqnr_db = 10 * torch.log10(reference.pow(2).mean() / (quantized - reference).pow(2).mean())
    assert sqnr_db > 15


def test_quantize_rejects_bad_options(fp32_onnx, fashion, tmp_path):
    from mobilenet.deploy.quantize import quantize_onnx

    with pytest.raises(ValueError, match="method"):
        quantize_onnx(fp32_onnx[1], tmp_path / "q.onnx", fashion, method="kl")
    with pytest.raises(ValueError, match="activations"):
        quantize_onnx(fp32_onnx[1], tmp_path / "q.onnx", fashion, activations="int4")
    assert not (tmp_path / "q.onnx").exists()


def test_eval_and_quantize_cli_on_onnx(fp32_onnx, tmp_path, capsys):
    from mobilenet.cli import main
    from mobilenet.data import load_dataset
    from mobilenet.train.evaluation import evaluate

    model, path = fp32_onnx
    assert main(["eval", str(path), "--json"]) == 0
    onnx_top1 = json.loads(capsys.readouterr().out)["top1"]
    assert onnx_top1 == pytest.approx(evaluate(model, load_dataset("fashion-mnist", "test")).top1, abs=0.05)
    out = tmp_path / "m.int8.onnx"
    assert main(["quantize", str(path), "--out", str(out), "--samples", "64", "--threads", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["int8"]["size_mb"] < report["fp32"]["size_mb"]
    assert report["fp32"]["top1"] == pytest.approx(onnx_top1)
    assert {"latency_ms", "top1"} <= set(report["int8"])
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(report["int8"]["top1"])


@pytest.fixture
def image_files(tmp_path, fashion):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):  # 28x28 grayscale, as the dataset stores them
        Image.fromarray(fashion.images[i, 0].numpy(), mode="L").save(folder / f"item{i}.png")
    Image.new("RGB", (300, 200), (200, 30, 30)).save(folder / "photo.jpg")  # any size and mode is converted
    Image.new("RGBA", (40, 90), (0, 0, 0, 0)).save(folder / "transparent.png")
    (folder / "notes.png").write_bytes(b"this is not an image")
    return folder


def test_classifier_on_onnx_and_checkpoint_agree(fp32_onnx, image_files, tmp_path):
    from mobilenet.deploy import Classifier
    from mobilenet.weights import save

    model, path = fp32_onnx
    checkpoint = save(
        model,
        tmp_path / "m.safetensors",
        metadata={
            "classes": json.dumps([str(i) for i in range(10)]),
            "image_size": "28",
            "mean": "[0.286]",
            "std": "[0.353]",
        },
    )
    files = sorted(p for p in image_files.iterdir() if p.name != "notes.png")
    from_onnx = Classifier(path).predict(files, k=3)
    from_checkpoint = Classifier(checkpoint).predict(files, k=3)
    assert len(from_onnx) == 5
    for a, b in zip(from_onnx, from_checkpoint, strict=True):
        assert [label for label, _ in a.top] == [label for label, _ in b.top]
        assert a.top[0][1] == pytest.approx(b.top[0][1], abs=1e-4)
        assert a.top[0][1] >= a.top[1][1] >= a.top[2][1]


def test_a_bad_file_does_not_stop_the_others(fp32_onnx, image_files):
    from mobilenet.deploy import Classifier

    predictions, errors = Classifier(fp32_onnx[1]).predict_files([image_files, image_files / "missing.png"], k=2)
    assert len(predictions) == 5
    assert set(errors) == {str(image_files / "notes.png"), str(image_files / "missing.png")}
    assert "not a readable image" in errors[str(image_files / "notes.png")]
    with pytest.raises(ValueError, match=r"notes\.png: not a readable image"):
        Classifier(fp32_onnx[1]).predict([image_files / "notes.png"])


def test_predict_cli(fp32_onnx, image_files, capsys):
    from mobilenet.cli import main

    code = main(["predict", str(image_files), "--weights", str(fp32_onnx[1]), "--top-k", "2", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1  # one file failed; the others were classified
    assert len(report["predictions"]) == 5
    assert all(len(p["top"]) == 2 for p in report["predictions"])
    assert "notes.png" in captured.err


def test_weight_quantization_error_follows_the_uniform_model_on_spread_weights():
    from mobilenet.deploy.analysis import weight_quantization_error

    torch.manual_seed(0)
    conv = nn.Conv2d(64, 32, 3)
    nn.init.uniform_(conv.weight, -1, 1)  # spread over all 255 levels: the Δ²/12 model holds
    (row,) = weight_quantization_error(nn.Sequential(conv))
    assert row.ratio == pytest.approx(1.0, rel=0.05)
    assert row.model_mse == pytest.approx((1 / 127) ** 2 / 12, rel=0.02)
    sparse = nn.Conv2d(64, 32, 3)
    with torch.no_grad():
        sparse.weight.normal_(0, 0.001)
        sparse.weight[:, 0, 0, 0] = 1.0  # one large weight per channel: the rest round to 0, error below Δ²/12
    (row,) = weight_quantization_error(nn.Sequential(sparse))
    assert row.ratio < 0.2


def test_activation_ranges_are_bounded_by_relu6():
    from mobilenet.deploy.analysis import activation_ranges

    model = with_random_statistics(mobilenet.create_model("mobilenet_v2", alpha=0.35, num_classes=10))
    ranges = activation_ranges(model, torch.randn(4, 3, 64, 64) * 3)
    relu6 = [r for name, r in ranges.items() if name.endswith(".act")]
    assert relu6
    assert all(low >= 0.0 and high <= 6.0 for low, high, _ in relu6)
    assert any(low < 0 for name, (low, _, _) in ranges.items() if name.endswith("project"))  # linear bottleneck


def test_activation_sqnr_follows_the_graph_and_ends_at_the_output_error(fp32_onnx, fashion, tmp_path):
    from mobilenet.data import normalize
    from mobilenet.deploy.analysis import activation_sqnr
    from mobilenet.deploy.quantize import quantize_onnx
    from mobilenet.deploy.runtime import OnnxModel

    _, path = fp32_onnx
    out = quantize_onnx(path, tmp_path / "m.int8.onnx", fashion, samples=64)
    x = normalize(fashion.images[:64], (0.286,), (0.353,))
    rows = activation_sqnr(path, out, [x[:32], x[32:]])
    assert len(rows) > 20
    assert {row.op for row in rows} >= {"Conv", "Clip", "Gemm"}
    assert all(5 < row.sqnr_db < 80 for row in rows)
    # The debugger runs the QDQ graph's arithmetic (DequantizeLinear, float op, QuantizeLinear), so the figure to
    # compare with is that graph run as written: without graph optimizations. With them, ONNX Runtime fuses it into
    # int8 kernels whose result depends on the CPU: on AVX2 without VNNI its u8s8 kernel (VPMADDUBSW) saturates, and
    # these random-statistics weights lose 12 dB there (this test's own assertion on f91d385, comparing with the
    # fused kernels: 41.6 against 29.2 dB, AMD EPYC without AVX-512, 2026-11-30),
    # while the trained V2 keeps its top-1 (95.09% fp32, 95.12% int8, `mobilenet quantize` on the same machine).
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    as_written = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    reference = OnnxModel(path)(x)
    quantized = torch.from_numpy(as_written.run(None, {"input": x.numpy()})[0])
    direct = 20 * torch.log10(reference.norm() / (quantized - reference).norm()).item()
    assert rows[-1].op == "Gemm"
    assert rows[-1].sqnr_db == pytest.approx(direct, abs=0.5)  # the logits: the same figure, computed apart


def test_the_stem_stays_float_unless_asked(fp32_onnx, fashion, tmp_path):
    import onnx

    from mobilenet.deploy.quantize import quantize_onnx

    def stem_weight_is_int8(path) -> bool:
        graph = onnx.load(str(path)).graph
        producer = {output: node for node in graph.node for output in node.output}

        def reads_the_image(node) -> bool:  # input -> QuantizeLinear -> DequantizeLinear -> Conv
            dq = producer.get(node.input[0])
            q = producer.get(dq.input[0]) if dq is not None else None
            return q is not None and q.input[0] == graph.input[0].name

        stem = next(n for n in graph.node if n.op_type == "Conv" and reads_the_image(n))
        return stem.input[1] in producer and producer[stem.input[1]].op_type == "DequantizeLinear"

    def stem_is_float(path) -> bool:
        graph = onnx.load(str(path)).graph
        return any(n.op_type == "Conv" and n.input[0] == graph.input[0].name for n in graph.node)

    default = quantize_onnx(fp32_onnx[1], tmp_path / "default.onnx", fashion, samples=16)
    assert stem_is_float(default)
    assert "stem in float" in onnx.load(str(default)).metadata_props[-1].value
    everything = quantize_onnx(fp32_onnx[1], tmp_path / "all.onnx", fashion, samples=16, float_stem=False)
    assert not stem_is_float(everything)
    assert stem_weight_is_int8(everything)


def test_quantize_never_touches_files_it_did_not_create(fp32_onnx, fashion, tmp_path, monkeypatch):
    from mobilenet.deploy.quantize import quantize_onnx

    monkeypatch.chdir(tmp_path)
    users = tmp_path / "augmented_model_v2_final.onnx"  # the name ONNX Runtime's calibrator once used, in the cwd
    users.write_bytes(b"the user's model")
    before = sorted(p.name for p in tmp_path.iterdir())
    quantize_onnx(fp32_onnx[1], tmp_path / "out" / "m.int8.onnx", fashion, samples=32)
    assert users.read_bytes() == b"the user's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "out"])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.int8.onnx"]


def test_quantizing_an_int8_file_is_refused_before_anything_is_written(fp32_onnx, fashion, tmp_path):
    from mobilenet._io import InputError
    from mobilenet.deploy.quantize import quantize_onnx

    int8 = quantize_onnx(fp32_onnx[1], tmp_path / "m.int8.onnx", fashion, samples=32)
    with pytest.raises(InputError, match=r"m\.int8\.onnx is already quantized \(it holds .*QuantizeLinear"):
        quantize_onnx(int8, tmp_path / "twice.onnx", fashion, samples=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.onnx"]


def test_export_of_non_finite_weights_fails_its_check_and_writes_nothing(tmp_path):
    model = mobilenet.create_model("mobilenet_v3_small", alpha=0.35, num_classes=10, in_chans=1, small_input=True)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        export_onnx(model.eval(), tmp_path / "m.onnx", 32)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset", [16, 99, 10**6])
def test_an_opset_out_of_range_is_refused_before_export(tmp_path, opset):
    model = mobilenet.create_model("mobilenet_v3_small", alpha=0.35, num_classes=10, in_chans=1, small_input=True)
    with pytest.raises(ValueError, match=rf"opset must be >= 17 .* and <= \d+ .*got {opset}"):
        export_onnx(model.eval(), tmp_path / "m.onnx", 32, opset=opset)
    assert list(tmp_path.iterdir()) == []


def _with_metadata(path, out, **changes):
    import onnx

    proto = onnx.load(str(path))
    kept = [(e.key, e.value) for e in proto.metadata_props if e.key not in changes]
    del proto.metadata_props[:]
    for key, value in [*kept, *changes.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(out))
    return out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_size": "100000"}, r"metadata input size 100000 is outside 1\.\.4096"),
        ({"input_size": "56"}, "metadata says 56 px, but the graph's input is 28 px"),
        ({"input_size": "abc"}, "metadata input size 'abc' is not an integer"),
        ({"mean": "[0.5, 0.5, 0.5]"}, "metadata 'mean' has 3 value.s. for a 1-channel input"),
        ({"std": "[0]"}, "metadata 'std' = .* is not usable"),
        ({"labels": json.dumps(["a", "b"])}, "metadata names 2 labels for 10 outputs"),
        ({"labels": "{"}, "metadata labels must be a JSON list of strings"),
        ({"in_chans": "3"}, "metadata in_chans='3', but the network takes 1"),
    ],
)
def test_onnx_metadata_is_checked_against_the_graph(fp32_onnx, tmp_path, changes, message):
    from mobilenet._io import InputError
    from mobilenet.deploy import Classifier

    path = _with_metadata(fp32_onnx[1], tmp_path / "hostile.onnx", **changes)
    with pytest.raises(InputError, match=rf"hostile\.onnx: {message}"):
        Classifier(path)


def test_checkpoint_metadata_is_checked_against_the_model(fp32_onnx, tmp_path):
    from mobilenet._io import InputError
    from mobilenet.deploy import Classifier
    from mobilenet.weights import save

    path = save(fp32_onnx[0], tmp_path / "m.safetensors", metadata={"image_size": "100000", "mean": "[0.5]"})
    with pytest.raises(InputError, match=r"m\.safetensors: metadata input size 100000 is outside 1\.\.4096"):
        Classifier(path)


def test_an_onnx_file_that_is_not_a_classifier_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from mobilenet._io import InputError
    from mobilenet.deploy import Classifier

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "relu.onnx"))
    with pytest.raises(InputError, match=r"relu\.onnx is not an image classifier"):
        Classifier(tmp_path / "relu.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(ValueError, match=r"junk\.onnx is not a readable ONNX file"):
        Classifier(tmp_path / "junk.onnx")


def test_classify_skips_fifos_bombs_and_broken_files_with_a_message_each(fp32_onnx, image_files, monkeypatch):
    import os

    from PIL import Image

    from mobilenet.deploy import Classifier
    from mobilenet.deploy.predictor import Failure, Prediction

    os.mkfifo(image_files / "pipe.png")
    Image.new("L", (1000, 1000)).save(image_files / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # a million pixels: a bomb at this limit, the others not
    outcomes = list(Classifier(fp32_onnx[1]).classify([image_files, image_files / "pipe.png"], k=2))
    failures = {Path(o.source).name: o.error for o in outcomes if isinstance(o, Failure)}
    assert failures.keys() == {"pipe.png", "bomb.png", "notes.png"}
    assert "decompression bomb" in failures["bomb.png"]
    assert "not a regular file" in failures["pipe.png"]
    assert sum(isinstance(o, Prediction) for o in outcomes) == 5


def test_classify_batches_its_calls_and_yields_each_batch_as_it_is_done(fp32_onnx, image_files):
    from mobilenet.deploy import Classifier
    from mobilenet.deploy.predictor import Prediction

    classifier = Classifier(fp32_onnx[1])
    calls, real = [], classifier._run
    classifier._run = lambda x: calls.append(len(x)) or real(x)
    files = sorted(p for p in image_files.iterdir() if p.name != "notes.png") * 4  # 20 images
    outcomes = classifier.classify(files, k=1, batch_size=8)
    first = next(outcomes)
    assert isinstance(first, Prediction)
    assert calls == [8]
    assert len([first, *outcomes]) == 20
    assert calls == [8, 8, 4]
    expected = classifier.predict(files, k=1)
    assert [p.top for p in expected] == [p.top for p in classifier.classify(files, k=1, batch_size=8)]


def test_predict_cli_prints_each_result_as_it_comes_and_a_document_on_interrupt(
    fp32_onnx, image_files, capsys, monkeypatch
):
    from mobilenet.cli import main
    from mobilenet.deploy.predictor import Classifier

    real = Classifier.classify

    def interrupted(self, paths, k=5, batch_size=64):
        for i, outcome in enumerate(real(self, paths, k, batch_size)):
            if i == 2:
                raise KeyboardInterrupt
            yield outcome

    monkeypatch.setattr(Classifier, "classify", interrupted)
    assert main(["predict", str(image_files), "--weights", str(fp32_onnx[1]), "--json"]) == 130
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["interrupted"] is True
    assert len(document["predictions"]) + len(document["errors"]) == 2
    assert "interrupted after" in captured.err
    assert main(["predict", str(image_files), "--weights", str(fp32_onnx[1])]) == 130
    printed = capsys.readouterr().out.splitlines()  # item0.png and item1.png, printed before the interrupt
    assert [line.split(":")[0] for line in printed] == [str(image_files / "item0.png"), str(image_files / "item1.png")]


def test_predict_cli_says_when_it_found_no_image(fp32_onnx, tmp_path, capsys):
    from mobilenet.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    assert main(["predict", str(tmp_path / "empty"), "--weights", str(fp32_onnx[1])]) == 1
    assert "no image files" in capsys.readouterr().err
