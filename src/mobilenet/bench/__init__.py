"""Measure the family on this machine: the latency harness (`mobilenet.bench.latency`)."""

from mobilenet.deploy.backends import BACKEND_NAMES as BACKENDS  # what can run a model (no torch: the CLI reads it)
from mobilenet.deploy.backends import DEPLOY_BACKENDS

MIN_RUNS = 30  # a measurement's timed calls, at least
MIN_TIME_S = 1.0  # and its seconds of timed calls, at least
ROUNDS = 7  # interleaved rounds when several backends are timed together

__all__ = ["BACKENDS", "DEPLOY_BACKENDS", "MIN_RUNS", "MIN_TIME_S", "ROUNDS"]
