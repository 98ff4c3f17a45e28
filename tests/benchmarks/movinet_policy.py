"""How MoViNet-A0-Stream should be run on endless streams: which sampling rate, and how often
to reset its state. Prints, in one run, for each rate and reset period:
- steady: the share of sampled frames (after the first second) whose top label is an accepted
  Kinetics label for the clip, averaged over six shared clips;
- delay: for every ordered pair of clips joined end to end, seconds from the change until the
  top label is the second clip's and stays so for a second (median and max);
then the top 3 per clip and the per-frame cost on a 25 fps source with the shipped settings.

    python tests/benchmarks/movinet_policy.py [--rates 3,5,8] [--resets-s 3,4,5]

It goes through the product's own code: FileSource, TimeSampler, the frame path and
StaggeredStates, so what it measures is what `live` does.
"""
import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import live  # noqa: E402,F401
from live import movinet  # noqa: E402
from live.backbones import load_backbone_model  # noqa: E402
from live.frames import TimeSampler, to_model_input  # noqa: E402
from live.sources import FileSource  # noqa: E402
from test_kinetics import ACCEPTED, CLIPS, KINETICS  # noqa: E402


def sampled_images(clip, rate):
    source, sampler = FileSource(str(CLIPS / clip)), TimeSampler(1, rate)
    images = [to_model_input(f.image, movinet.IMAGE_SIZE) for f in source.frames() if sampler.keep(f.timestamp)]
    source.close()
    return np.stack(images)


def top_labels(logits, labels):
    return [labels[i] for i in np.argmax(logits, axis=1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="3,5,8,10")
    parser.add_argument("--resets-s", default="2.4,3.2,4,4.8", help="Reset periods, in seconds.")
    args = parser.parse_args()
    model = load_backbone_model("movinet_a0_stream")
    labels = (KINETICS / "labels.txt").read_text().splitlines()
    print(f"{'fps':>4} {'reset':>9} {'steady':>7} {'delay med':>9} {'max':>6} {'>3 s':>5}   per clip steady")
    for rate in map(float, args.rates.split(",")):
        images = {clip: sampled_images(clip, rate) for clip in ACCEPTED}
        for seconds in map(float, args.resets_s.split(",")):
            reset = max(2, round(seconds * rate))
            steady = {}
            for clip, frames in images.items():
                tops = top_labels(movinet.StaggeredStates(model, reset)(frames), labels)
                steady[clip] = np.mean([t in ACCEPTED[clip] for t in tops[int(rate):]])
            delays = []
            for first, second in itertools.permutations(ACCEPTED, 2):
                if steady[second] < 0.8:  # a clip the model never settles on can't show a delay
                    continue
                tops = top_labels(movinet.StaggeredStates(model, reset)(
                    np.concatenate([images[first], images[second]])), labels)[len(images[first]):]
                hits = [t in ACCEPTED[second] for t in tops]
                hold = int(rate)
                delay = next((i for i in range(len(hits)) if all(hits[i:i + hold])), None)
                delays.append(delay / rate if delay is not None else float("inf"))
            print(f"{rate:4g} {reset:3d} ({reset / rate:3.1f}s) {np.mean(list(steady.values())):7.3f} "
                  f"{np.median(delays):8.2f}s {max(delays):5.2f}s {sum(d > 3 for d in delays):2d}/{len(delays)}   "
                  + " ".join(f"{clip.split('_')[0][:6]} {value:.2f}" for clip, value in steady.items())
                  + "".join(f"  (no delay into {clip}: steady {value:.2f} < 0.8)"
                            for clip, value in steady.items() if value < 0.8), flush=True)

    print("\nshipped settings: sampled at", movinet.FRAME_RATE, "fps, reset every", movinet.RESET_EVERY, "frames")
    for clip in ACCEPTED:
        logits = movinet.StaggeredStates(model)(sampled_images(clip, movinet.FRAME_RATE))[-1]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(probs)[::-1][:3]
        print(f"  {clip:32s} " + ", ".join(f"{labels[i]} {probs[i]:.2f}" for i in top))

    # Cost on a 25 fps source: every frame is read, one in five is prepared and embedded.
    source, sampler = FileSource(str(CLIPS / "eye_makeup_320x240.avi")), TimeSampler(1, movinet.FRAME_RATE)
    stream, read_ms, prep_ms, embed_ms, frames = movinet.StaggeredStates(model), [], [], [], 0
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for frame in source.frames():
        frames += 1
        read_ms.append(frame.read_ms)
        if sampler.keep(frame.timestamp):
            started = time.perf_counter()
            image = to_model_input(frame.image, movinet.IMAGE_SIZE)[None]
            prepared = time.perf_counter()
            stream(image)
            prep_ms.append((prepared - started) * 1000)
            embed_ms.append((time.perf_counter() - prepared) * 1000)
    cpu = time.process_time() - cpu_started
    video_seconds = frames / source.fps
    print(f"\n25 fps source ({frames} frames, {video_seconds:.2f} s of video): read {np.median(read_ms):.2f} ms a frame; "
          f"{len(embed_ms)} sampled: preprocess {np.median(prep_ms):.2f} ms, embed (two states) "
          f"{np.median(embed_ms):.2f} ms median, p95 {np.percentile(embed_ms, 95):.2f} ms; "
          f"CPU {cpu:.2f} s for {video_seconds:.2f} s of video = {cpu / video_seconds:.1%} of one core "
          f"(wall {time.perf_counter() - wall_started:.2f} s)")


if __name__ == "__main__":
    main()
