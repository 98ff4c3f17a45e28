"""One `live.Model` shared by several threads, each iterating its own `model.stream()`: every
stream's results equal those of a run on it alone, frame by frame. The threads start together
behind a barrier and stream 120+ frames each, so their calls into the shared runtimes (the
backbone, MoViNet's interpreters, the head) really overlap. When the threads shared each
interpreter, both cases failed: MoViNet's probabilities were off by up to 1.0 from the 12th
frame on, and LiteRT refused to plan an interpreter another thread was reading."""
import threading

import numpy as np
import pytest

from conftest import CLIPS, ROOT

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

FRAMES = 150


def run(model, sources):
    """{stream name: (frame indexes, sampled flags, probabilities)} of `model.stream(sources)`."""
    streams = {}
    for result in model.stream(sources, max_frames=FRAMES):
        frames, sampled, probs = streams.setdefault(result.stream, ([], [], []))
        frames.append(result.frame.index)
        sampled.append(result.sampled)
        probs.append(result.probs.copy())
    return {name: (frames, sampled, np.array(probs)) for name, (frames, sampled, probs) in streams.items()}


def run_in_threads(model, sources_per_thread):
    """`run` on each list of sources, each in its own thread, all started at once."""
    barrier = threading.Barrier(len(sources_per_thread))
    outcomes = [None] * len(sources_per_thread)

    def work(number, sources):
        try:
            barrier.wait()
            outcomes[number] = run(model, sources)
        except BaseException as error:  # handed to the test's thread, which raises it
            outcomes[number] = error

    threads = [threading.Thread(target=work, args=(number, sources))
               for number, sources in enumerate(sources_per_thread)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("bundle, sources_per_thread", [
    # MoViNet: two threads of one stream each (each calls the backbone itself), and a third
    # whose two streams run on the backbone's worker pool at the same time.
    ("kinetics600", [[CLIPS / "pool_cleaning.mp4"], [CLIPS / "arm_wrestling.mp4"],
                     [CLIPS / "basketball.mp4", CLIPS / "flipping_pancake.mkv"]]),
    # An image backbone and a LiteRT head, one stream per thread: a batch of 1, as alone.
    ("lite", [[CLIPS / "pool_cleaning.mp4"], [CLIPS / "arm_wrestling.mp4"]]),
])
def test_threads_sharing_a_model_equal_single_runs(bundle, sources_per_thread, request):
    import live

    model = live.load(request.getfixturevalue("lite_bundle") if bundle == "lite" else ROOT / "weights" / "kinetics600")
    together = run_in_threads(model, [[str(source) for source in sources] for sources in sources_per_thread])
    for sources, streams in zip(sources_per_thread, together):
        assert list(streams) == [str(source) for source in sources]
        for source in sources:
            frames, sampled, probs = streams[str(source)]
            alone_frames, alone_sampled, alone_probs = run(model, str(source))[str(source)]
            assert frames == alone_frames == list(range(FRAMES))
            assert sampled == alone_sampled and sum(sampled) >= 25  # MoViNet samples 5 fps of a 30 fps clip
            difference = np.abs(probs - alone_probs).max(axis=1)
            assert difference.max() <= 1e-6, (source.name, f"frames {np.flatnonzero(difference > 1e-6)[:10]} differ "
                                                           f"by up to {difference.max()}")
