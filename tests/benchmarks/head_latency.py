"""Benchmark: what one step of the sequence model costs, in LiteRT and as the traced Keras call.

Run:  python tests/benchmarks/head_latency.py [--models gru,motion,reference] [--calls 2000]

Live runs the head once per sampled frame, on one window (batch 1). For each model kind this
builds the model `train fit` would (EfficientNet-Lite0's 1280 features, 20 frames, 8 classes,
weights as initialised: the cost does not depend on their values), converts it to LiteRT as
live does (make_head) and times both on the same random windows, full and partial, in one
run. LiteRT runs the head on one thread, as live does; the Keras call uses TensorFlow's pools,
one thread per usable CPU; so the ratio depends on the core count too, which the output names.
It also prints the largest difference between the two outputs. Not a test: it measures.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from live.cpus import usable_cpus  # noqa: E402
from live.runtimes import LiteRTModel, compiled_call, make_head  # noqa: E402
from training.model import MODEL_KINDS, build_sequence_model  # noqa: E402

SEQ_LEN, FEATURES, CLASSES = 20, 1280, 8


def windows(count, rng):
    """Random windows, a quarter of them partial (as live sees while its buffer fills)."""
    features = rng.normal(size=(count, 1, SEQ_LEN, FEATURES)).astype(np.float32)
    filled = np.where(rng.random(count) < 0.25, rng.integers(1, SEQ_LEN, count), SEQ_LEN)
    masks = (np.arange(SEQ_LEN)[None, :] < filled[:, None])[:, None, :]
    return list(zip(features, masks))


def per_call_ms(call, inputs):
    for frames, mask in inputs[:50]:  # warm-up: tracing, allocation
        call(frames, mask)
    started = time.perf_counter()
    for frames, mask in inputs:
        call(frames, mask)
    return (time.perf_counter() - started) / len(inputs) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODEL_KINDS))
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    inputs = windows(args.calls, rng)
    print(f"batch-1 calls on {args.calls} windows; LiteRT on 1 thread, Keras on {usable_cpus()}")
    print(f"{'model':9} {'params':>7} {'litert ms':>9} {'keras ms':>8} {'keras/litert':>12} {'max |diff|':>10}")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LIVE_CACHE_DIR"] = cache  # a fresh conversion, not one cached by an earlier run
        for kind in args.models.split(","):
            model = build_sequence_model(kind, SEQ_LEN, FEATURES, CLASSES,
                                         rng.normal(size=FEATURES), rng.uniform(0.5, 2.0, size=FEATURES))
            litert = make_head(model, f"bench-{kind}", "litert")
            assert isinstance(litert, LiteRTModel), f"{kind} did not convert to LiteRT"
            keras_call = compiled_call(model)
            litert_ms, keras_ms = per_call_ms(litert, inputs), per_call_ms(keras_call, inputs)
            diff = max(float(np.abs(litert(f, m) - keras_call(f, m)).max()) for f, m in inputs[:200])
            print(f"{kind:9} {model.count_params():7,} {litert_ms:9.3f} {keras_ms:8.3f} "
                  f"{keras_ms / litert_ms:11.1f}x {diff:10.1e}")


if __name__ == "__main__":
    main()
