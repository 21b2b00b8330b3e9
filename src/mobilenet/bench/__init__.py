"""Measure the family on this machine: the latency harness (`mobilenet.bench.latency`)."""

# What can run a model; defined here, free of torch, so that the CLI's --help stays fast.
BACKENDS = ("torch", "torch-fused", "compile", "onnx", "onnx-int8", "onnx-int8-portable")
MIN_RUNS = 30  # a measurement's timed calls, at least
MIN_TIME_S = 1.0  # and its seconds of timed calls, at least
