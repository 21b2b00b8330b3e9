"""Deployment backends: each runs the committed Fashion-MNIST weights to the fp32 model's answers within what its
precision allows, and no file runs silently wrong in a runtime that lacks its operators."""

import json
import shlex
import shutil

import pytest
import torch

import mobilenet
from mobilenet._io import InputError
from mobilenet.deploy.artifacts import build_artifact, load_artifact
from mobilenet.deploy.backends import BACKENDS, DEPLOY_BACKENDS, deploy_backends, supported

WEIGHTS = "weights/mobilenet_v3_small_1.0_fashion_mnist.safetensors"  # h-swish: the hard case for int8
SUPPORTED = deploy_backends()
TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2}  # of the fp32 logits' scale
AGREEMENT = {"fp32": 1.0, "bf16": 0.99, "int8": 0.97}  # top-1 agreement with the fp32 model, at least


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Every artifact of the committed V3-Small, int8 ones calibrated on 256 Fashion-MNIST training images, and the
    fp32 model's logits on 500 test images."""
    from mobilenet.data import load_dataset, normalize

    model = mobilenet.load(WEIGHTS)
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    directory = tmp_path_factory.mktemp("artifacts")
    recipe = mobilenet.deploy.QuantizeRecipe(samples=256)
    paths = {name: build_artifact(model, name, 28, directory, train, recipe) for name in SUPPORTED}
    images, labels = test.batch(torch.arange(500))
    x = normalize(images, train.info.mean, train.info.std)
    with torch.no_grad():
        reference = model(x)
    return paths, x, labels, reference


def test_the_table_and_what_this_machine_supports():
    assert set(DEPLOY_BACKENDS) == {"onnx", "onnx-int8", "openvino", "openvino-bf16", "openvino-int8"}
    assert {"onnx", "onnx-int8"} <= set(SUPPORTED)  # onnxruntime is a dependency
    for name in BACKENDS:
        assert (supported(name) is None) == (name in SUPPORTED or not BACKENDS[name].deploy)
    with pytest.raises(InputError, match="unknown backend 'tensorrt'"):
        deploy_backends(["tensorrt"])


@pytest.mark.parametrize("name", DEPLOY_BACKENDS)
def test_every_backend_answers_as_the_fp32_model_within_its_precision(artifacts, name):
    if name not in SUPPORTED:
        pytest.skip(f"{name}: {supported(name)}")
    paths, x, labels, reference = artifacts
    logits = load_artifact(paths[name], name, threads=2)(x)
    precision = BACKENDS[name].precision
    agreement = (logits.argmax(1) == reference.argmax(1)).float().mean().item()
    assert agreement >= AGREEMENT[precision], (name, agreement)
    if precision in TOLERANCE:
        scale = reference.abs().max().item()
        assert (logits - reference).abs().max().item() <= TOLERANCE[precision] * scale
    top1 = (logits.argmax(1) == labels).float().mean().item()
    assert top1 >= (reference.argmax(1) == labels).float().mean().item() - 0.02  # within 2 points of fp32


def test_a_file_with_onnx_runtime_private_operators_is_refused_by_openvino(artifacts, tmp_path):
    if "openvino" not in SUPPORTED:
        pytest.skip(supported("openvino"))
    paths, *_ = artifacts
    private = paths["onnx-int8"]
    assert mobilenet.deploy.read_metadata(private)["runtime"] == "onnxruntime"
    for backend in ("openvino", "openvino-int8"):
        with pytest.raises(InputError, match="needs ONNX Runtime's private operators"):
            load_artifact(private, backend)
    # also a file written before the metadata said so: the graph's com.microsoft operators give it away
    import onnx

    proto = onnx.load(str(private))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != "runtime"]
    del proto.metadata_props[:]
    for key, value in kept:
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(tmp_path / "older.onnx"))
    with pytest.raises(InputError, match=r"com\.microsoft\.QLinear"):
        load_artifact(tmp_path / "older.onnx", "openvino")


def test_eval_and_predict_run_a_file_in_the_backend_asked_for(artifacts, capsys, tmp_path):
    if "openvino-int8" not in SUPPORTED:
        pytest.skip(supported("openvino-int8"))
    from mobilenet.cli import main

    paths, *_ = artifacts
    portable = str(paths["openvino-int8"])
    code = main(["eval", portable, "--backend", "openvino-int8", "--json", "--threads", "2"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["top1"] > 85
    assert main(["eval", str(paths["onnx-int8"]), "--backend", "openvino"]) == 2
    assert "needs ONNX Runtime's private operators" in capsys.readouterr().err
    image = tmp_path / "shoe.png"
    from PIL import Image

    Image.new("L", (28, 28), 128).save(image)
    assert main(["predict", str(image), "--weights", portable, "--backend", "openvino-int8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["image"] == str(image)
    assert main(["predict", str(image), "--weights", WEIGHTS, "--backend", "openvino"]) == 2
    assert "is a checkpoint: export it" in capsys.readouterr().err


def test_a_model_evaluated_in_channels_last_still_exports_with_a_dynamic_batch(tmp_path):
    """`evaluate` puts a module in channels_last; torch.export then pinned the batch (a guard batch <= 2) until the
    export took a contiguous copy."""
    from mobilenet.deploy.runtime import OnnxModel

    model = mobilenet.create_model("mobilenet_v3_small", alpha=0.35, num_classes=10, in_chans=1, small_input=True)
    model = model.eval().to(memory_format=torch.channels_last)
    path = mobilenet.export_onnx(model, tmp_path / "m.onnx", 28).path
    assert OnnxModel(path)(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_select_out_writes_the_picks_file_from_the_checkpoint_its_results_name(tmp_path, capsys):
    from mobilenet.cli import main
    from mobilenet.deploy.runtime import OnnxModel

    weights = tmp_path / "v3s.safetensors"
    shutil.copyfile(WEIGHTS, weights)
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            [{"file": weights.name, "model": "mobilenet_v3_small", "alpha": 1.0, "small_input": True, "top1": 94.16}]
        )
    )
    argv = [
        *shlex.split("select --accuracy"),
        str(results),
        *shlex.split("--backend onnx --latency-ms 1000 --threads 1 --no-cache --measure-all --quiet --out"),
        str(tmp_path / "deploy"),
        "--json",
    ]
    assert main(argv) == 0
    assert "written:" in json.loads(capsys.readouterr().out)["message"]
    (written,) = (tmp_path / "deploy").iterdir()
    model = OnnxModel(written)
    assert model.labels[0] == "T-shirt/top"  # the checkpoint's metadata travelled into the file
    assert model.config == mobilenet.load(WEIGHTS).config


def test_without_openvino_its_backends_say_how_to_install_it(monkeypatch):
    import mobilenet.deploy.backends as backends
    from mobilenet.bench.select import candidates

    monkeypatch.setattr(backends, "openvino_capabilities", lambda: None)
    assert "pip install 'mobilenet[openvino]'" in backends.supported("openvino-int8")
    assert backends.deploy_backends() == ["onnx", "onnx-int8"]
    with pytest.raises(InputError, match=r"backend openvino: OpenVINO is not installed"):
        candidates(backends=["openvino"], predict=True, progress=False)


def test_the_fast_exporter_writes_the_graph_the_runtimes_run(artifacts, tmp_path):
    """What latency is measured on (the TorchScript exporter's file) is the file users deploy (torch.export's): the
    same operators but for how the classifier flattens, and the same answers."""
    import collections

    import onnx

    from mobilenet.deploy.artifacts import load_artifact
    from mobilenet.deploy.onnx import export_onnx

    paths, x, _, reference = artifacts
    fast = tmp_path / "fast.onnx"
    export_onnx(mobilenet.load(WEIGHTS), fast, 28, exporter="torchscript")

    def operators(path):
        ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
        return ops - collections.Counter({"Flatten": 1, "Reshape": 1, "Constant": ops["Constant"]})

    assert operators(fast) == operators(paths["onnx"])
    logits = load_artifact(fast, "onnx")(x)
    assert (logits - reference).abs().max().item() <= 1e-4 * reference.abs().max().item()
    with pytest.raises(InputError, match="exporter must be one of"):
        export_onnx(mobilenet.load(WEIGHTS), tmp_path / "x.onnx", 28, exporter="tracer")
