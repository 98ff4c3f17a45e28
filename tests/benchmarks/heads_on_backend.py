"""Benchmark and check: every sequence head trains on the streamed windows under the Keras
backend and device this process has (KERAS_BACKEND=tensorflow|jax; a GPU where JAX sees one),
and saves and loads (safe_mode) to the same probabilities.

Run:  KERAS_BACKEND=jax python tests/benchmarks/heads_on_backend.py [--epochs 20] [--out FILE]

No TensorFlow, video or cache is needed: the clips are made here, 600 features a frame shaped like
MoViNet's class scores (each class of clips raises a few scores of its own, over noise and a drift
of the clip's own), so the script also runs on a machine that has JAX but no TensorFlow (the
device machine). The linear head is built both ways fit builds it: on every feature, and on the
classes the training clips evoke (training.fit.evoked_classes). Per head it prints the
milliseconds a training window takes an epoch (after the first epoch, which compiles), the
accuracy on held-out clips (all windows of a clip, as fit scores them) and the largest
difference between the probabilities before saving and after loading. Exits 1 if a head fails
to learn (held-out accuracy under 0.75, three times chance) or loads to other probabilities (over 1e-5).
Not a test: it measures; the suite's tests train these heads on real features.
"""
import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from live.quiet import keras  # noqa: E402
from training.datasets import Clip  # noqa: E402
from training.fit import evoked_classes, evoked_subset, feature_statistics  # noqa: E402
from training.model import MODEL_KINDS, build_sequence_model  # noqa: E402
from training.windows import WindowBatches, predict_clip  # noqa: E402

SEQ_LEN, FEATURES, CLASSES, FRAMES = 20, 600, 4, 60


def make_clips(per_class, rng, first=0):
    """{path: (FRAMES, FEATURES) scores} and their Clips: class k raises scores 10k..10k+4."""
    features, clips = {}, []
    for label in range(CLASSES):
        for i in range(per_class):
            drift = np.cumsum(rng.normal(0, 0.1, (FRAMES, FEATURES)), axis=0)
            scores = rng.normal(0, 1, (FRAMES, FEATURES)) + drift
            scores[:, 10 * label:10 * label + 5] += 4.0
            path = f"clip_{label}_{first + i}"
            features[path] = scores.astype(np.float32)
            clips.append(Clip(Path(path), str(label), f"{label}/{first + i}"))
    return features, clips


def held_out_accuracy(model, features, clips):
    run = lambda x, m: keras.ops.convert_to_numpy(model([x, m], training=False))  # noqa: E731
    right = [np.argmax(predict_clip(run, features[str(c.path)], SEQ_LEN)[1]) == int(c.label) for c in clips]
    return float(np.mean(right))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="At least 2: the first compiles, and is not timed.")
    parser.add_argument("--clips-per-class", type=int, default=12)
    parser.add_argument("--out", help="Also write the results here (JSON).")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first compiles, and is not timed")

    rng = np.random.default_rng(0)
    train_features, train_clips = make_clips(args.clips_per_class, rng)
    test_features, test_clips = make_clips(4, rng, first=args.clips_per_class)
    labels = [str(k) for k in range(CLASSES)]
    mean, variance = feature_statistics(train_features, train_clips)
    subset = evoked_subset(evoked_classes(train_features, train_clips, labels))
    heads = [(kind, None) for kind in MODEL_KINDS] + [("linear", subset)]
    device = str(keras.ops.convert_to_tensor(np.zeros(1)).device) if keras.backend.backend() == "jax" else "cpu"
    results, failed = [], False
    for kind, feature_subset in heads:
        keras.utils.set_random_seed(0)
        batches = WindowBatches(train_features, [str(c.path) for c in train_clips], [int(c.label) for c in train_clips],
                                SEQ_LEN, 24, 64, np.random.default_rng(0), 0)
        model = build_sequence_model(kind, SEQ_LEN, FEATURES, CLASSES, mean, variance, feature_subset)
        times = []
        timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_: times.append(time.perf_counter()),
                                               on_train_end=lambda *_: times.append(time.perf_counter()))
        model.fit(batches, epochs=args.epochs, verbose=0, callbacks=[batches.epoch_callback(), timer])
        per_window_ms = 1000 * (times[-1] - times[1]) / ((len(times) - 2) * batches.windows)
        accuracy = held_out_accuracy(model, test_features, test_clips)
        with tempfile.TemporaryDirectory() as folder:
            model.save(Path(folder) / "head.keras")
            loaded = keras.saving.load_model(Path(folder) / "head.keras", safe_mode=True)
        x = np.stack([test_features[str(c.path)][:SEQ_LEN] for c in test_clips])
        mask = np.ones(x.shape[:2], bool)
        mask[::2, 7:] = False  # partial windows too
        x[~mask] = 0
        difference = float(np.abs(keras.ops.convert_to_numpy(model([x, mask], training=False))
                                  - keras.ops.convert_to_numpy(loaded([x, mask], training=False))).max())
        name = kind if feature_subset is None else f"linear ({len(feature_subset)} evoked classes)"
        ok = accuracy >= 0.75 and difference <= 1e-5
        failed |= not ok
        results.append({"head": name, "ms_a_window_an_epoch": round(per_window_ms, 4), "held_out_accuracy": accuracy,
                        "load_difference": difference, "ok": ok})
        print(json.dumps(results[-1]), flush=True)
    print(f"\nbackend {keras.backend.backend()} on {device}; {platform.processor() or platform.machine()}; "
          f"{args.epochs} epochs of {batches.windows} windows")
    print("| head | ms a window an epoch | held-out accuracy | load difference | ok |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['head']} | {r['ms_a_window_an_epoch']:.4f} | {r['held_out_accuracy']:.3f} "
              f"| {r['load_difference']:.1e} | {r['ok']} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"backend": keras.backend.backend(), "device": device,
                                              "results": results}, indent=2) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
