"""`train pretrained`: a bundle that runs a backbone's own classifier, with nothing trained.

MoViNet-A0-Stream was trained on Kinetics-600 by its authors; its 600 logits per frame are
both its features and, through a softmax, its action classifier. The bundle written here
has a one-slot window and a head that is that softmax (`LastStepSoftmax`), so `live` shows
Kinetics actions out of the box through the same pipeline, overlay and outputs as any
trained bundle. weights/kinetics600 was made with:

    train pretrained --backbone movinet_a0_stream --labels ../shared/models/movinet_a0_stream_k600/labels.txt \\
        --backbone-weights ../shared/models/movinet_a0_stream_k600/model_int8.tflite --out weights/kinetics600
"""
from datetime import datetime, timezone
from pathlib import Path

from live import movinet
from live.backbones import fingerprint, get_backbone, load_backbone_model
from live.bundle import carried_backbone, write_bundle
from live.errors import UserError
from live.files import file_sha256
from live.quiet import keras
from live.sequence_layers import LastStepSoftmax

NOTICE = """The backbone file {file} is Google's MoViNet-A0-Stream, trained on Kinetics-600 and
quantised to int8, as published on TensorFlow Hub
(movinet/a0/stream/kinetics-600/classification/tflite/int8), sha256 {sha256}.
Paper: Kondratyuk et al., "MoViNets: Mobile Video Networks for Efficient Video Recognition", CVPR 2021.
labels.txt holds the 600 Kinetics-600 class names in the model's output order, from
tensorflow/models official/projects/movinet/files/kinetics_600_labels.txt.

Both are Copyright Google LLC, licensed under the Apache License, Version 2.0:
http://www.apache.org/licenses/LICENSE-2.0
Nothing in this bundle was trained by this project: model.keras is a softmax over the
backbone's own logits.
"""


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
    model_file = load_backbone_model(backbone, backbone_weights)
    features = keras.Input((1, spec.feature_size), name="features")
    mask = keras.Input((1,), dtype="bool", name="mask")
    head = keras.Model([features, mask], LastStepSoftmax(name="probabilities")([features, mask]),
                       name=f"{backbone}_classifier")
    entries, files = carried_backbone(model_file)
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
    files["NOTICE"] = NOTICE.format(file=entries["backbone_file"],
                                    sha256=file_sha256(model_file.path)).encode()
    return write_bundle(out, head, names, manifest, force=force, extra_files=files)
