"""`train pretrained`: a bundle that runs a backbone's own classifier, with nothing trained.

MoViNet-A0-Stream was trained on Kinetics-600 by its authors; its 600 logits per frame are
both its features and, through a softmax, its action classifier. The bundle written here
has a one-slot window and a head that is that softmax (`LastStepSoftmax`), so `live` shows
Kinetics actions out of the box through the same pipeline, overlay and outputs as any
trained bundle. weights/kinetics600 was made with:

    LIVE_MODELS=../shared/models train pretrained --backbone movinet_a0_stream \\
        --labels ../shared/models/movinet_a0_stream_k600/labels.txt --out weights/kinetics600

The bundle holds only what was made here (the head and the manifest): the backbone file and,
when it is the known Kinetics-600 list, the labels are named in the model store (live/store.py).
"""
from datetime import datetime, timezone
from pathlib import Path

from live import movinet, store
from live.backbones import fingerprint, get_backbone, load_backbone_model
from live.bundle import backbone_entries, write_bundle
from live.errors import UserError
from live.files import file_sha256
from training.checks import check_out


def make_pretrained_bundle(backbone, labels, out, backbone_weights=None, force=False):
    spec = get_backbone(backbone)
    if not spec.streaming:
        raise UserError(f"{backbone} has no classifier of its own to run; train one with `train fit`")
    try:
        names = [line.strip() for line in Path(labels).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read --labels {labels}: {exc}") from None
    if len(names) != spec.feature_size:
        raise UserError(f"{labels} has {len(names)} labels; {backbone} has {spec.feature_size} classes")
    check_out(out, force)
    # Keras (TensorFlow: seconds) is imported once what was typed has been checked.
    from live.quiet import keras
    from live.sequence_layers import LastStepSoftmax

    model_file = load_backbone_model(backbone, backbone_weights)
    features = keras.Input((1, spec.feature_size), name="features")
    mask = keras.Input((1,), dtype="bool", name="mask")
    head = keras.Model([features, mask], LastStepSoftmax(name="probabilities")([features, mask]),
                       name=f"{backbone}_classifier")
    entries, files = backbone_entries(model_file)
    known_labels = store.known_file(file_sha256(labels))
    if known_labels is not None:
        entries.setdefault("stored_files", {})["labels"] = known_labels.reference()
    manifest = {
        "backbone": backbone, "image_size": spec.image_size, "feature_size": spec.feature_size,
        "backbone_fingerprint": fingerprint(model_file), "seq_len": 1, "frame_step": 1,
        "frame_rate": spec.frame_rate, "model": "backbone_classifier",
        "stream_state": movinet.STATE_POLICY,
        "trained_on": {"description": "Nothing trained here: the backbone's own Kinetics-600 classifier "
                                      "(MoViNet-A0-Stream, Google, TensorFlow Hub, Apache-2.0)."},
        "metrics": {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **entries,
    }
    return write_bundle(out, head, names, manifest, force=force, extra_files=files)
