"""`train quantize`: give a bundle an int8 copy of its backbone, for `live --runtime openvino-int8`.

The fp32 backbone (the same LiteRT file the litert runtime uses) is quantised by NNCF for
OpenVINO, calibrated on frames of the training clips taken through live's frame path. Its
features are then compared with fp32 on frames of the test clips; a backbone whose cosine
similarity falls below the bound is refused and the bundle left as it was.
"""
import tempfile
import time
from pathlib import Path

import numpy as np

from live.backbones import fingerprint, load_backbone_model
from live.bundle import add_to_bundle, check_fingerprint, load_bundle, read_manifest
from live.errors import UserError
from live.files import file_sha256
from live.runtimes import INT8_BACKBONE_KEY, OpenVINOModel, litert_file, make_embedder
from training import log
from training.checks import check_image_backbone
from training.datasets import load_dataset
from training.features import FramePath, sampled_frames

INT8_MODEL, INT8_WEIGHTS = "backbone-int8.xml", "backbone-int8.bin"
# The bound the backbone work set for int8 features (tests/test_backbones.py).
MIN_COSINE = 0.98


def frames_across(clips, frame_path, count, rng):
    """About `count` model-ready frames from up to `count` of `clips` chosen at random, a few
    random frames of each (reservoir sampling, so a long clip never sits in memory whole)."""
    chosen = [clips[i] for i in sorted(rng.permutation(len(clips))[:count])]
    per_clip = max(1, -(-count // max(1, len(chosen))))
    frames = []
    for clip in chosen:
        kept, seen = [], 0
        try:
            for batch in sampled_frames(str(clip.path), frame_path):
                for frame in batch:
                    if len(kept) < per_clip:
                        kept.append(frame)
                    elif (slot := rng.integers(seen + 1)) < per_clip:
                        kept[slot] = frame
                    seen += 1
        except UserError:  # unreadable: calibrate on the others
            continue
        frames.extend(kept)
    return np.stack(frames[:count]) if frames else np.zeros((0,), np.uint8)


def cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def int8_backbone_files(backbone_model, weights_fingerprint, calibration, check, folder):
    """Quantise the backbone on `calibration` frames into folder/backbone-int8.{xml,bin}; returns
    the .xml path and the drift of its features from fp32 on the `check` frames."""
    import nncf
    import openvino
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    size = calibration.shape[1]
    fp32 = openvino.Core().read_model(str(litert_file(backbone_model, weights_fingerprint)))
    fp32.reshape({fp32.inputs[0]: [1, size, size, 3]})
    # OverflowFix: without VNNI, int8 kernels sum products in 16 bits; 7-bit weights keep them in range.
    int8 = nncf.quantize(fp32, nncf.Dataset(list(calibration), lambda image: image[None].astype(np.float32)),
                         subset_size=len(calibration),
                         advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE))
    xml = Path(folder) / INT8_MODEL
    openvino.save_model(int8, str(xml), compress_to_fp16=False)
    reference = make_embedder(backbone_model, weights_fingerprint, "litert")
    quantized = OpenVINOModel(xml)
    similarity = np.concatenate([cosine(reference(frame[None]), quantized(frame[None])) for frame in check])
    return xml, {"cosine_min": round(float(similarity.min()), 4),
                 "cosine_mean": round(float(similarity.mean()), 4), "frames": len(check)}


def quantize(weights, data, backbone_weights=None, frames=128, min_cosine=MIN_COSINE, split=1, seed=0):
    check_image_backbone(weights, read_manifest(weights)[0]["backbone"])
    try:
        import nncf
        import openvino
    except ImportError:
        raise UserError("train quantize needs OpenVINO and NNCF: pip install openvino nncf "
                        "(or the project's [int8] extra)") from None
    started = time.perf_counter()
    bundle = load_bundle(weights)
    manifest = bundle.manifest
    backbone_model = load_backbone_model(manifest["backbone"], backbone_weights)
    weights_fingerprint = fingerprint(backbone_model)
    check_fingerprint(bundle, weights_fingerprint)
    dataset = load_dataset(data, split=split, seed=seed)
    frame_path = FramePath.of_bundle(manifest)  # check_fingerprint: its fingerprint is the weights' own
    rng = np.random.default_rng(seed)
    calibration = frames_across(dataset.train, frame_path, frames, rng)
    check = frames_across(dataset.test or dataset.train, frame_path, max(16, frames // 2), rng)
    if len(calibration) < 8 or len(check) < 8:
        raise UserError(f"{data}: too few readable frames to calibrate on ({len(calibration)}) or to "
                        f"check the result with ({len(check)}); need 8 of each")
    log(f"calibrating on {len(calibration)} frames of training clips, checking on {len(check)} frames "
        f"of {'test' if dataset.test else 'training'} clips")

    with tempfile.TemporaryDirectory() as folder:
        xml, drift = int8_backbone_files(backbone_model, weights_fingerprint, calibration, check, folder)
        log(f"int8 vs fp32 features: cosine min {drift['cosine_min']}, mean {drift['cosine_mean']}")
        if drift["cosine_min"] < min_cosine:
            raise UserError(f"the int8 backbone drifts too far from fp32 (cosine min {drift['cosine_min']} < "
                            f"{min_cosine} on {len(check)} frames); {weights} is unchanged. Use --runtime "
                            "litert, or lower --min-cosine to accept it")
        files = {INT8_MODEL: xml, INT8_WEIGHTS: xml.with_suffix(".bin")}
        entry = {"model": INT8_MODEL, "backbone_fingerprint": weights_fingerprint,
                 "sha256": {name: file_sha256(path) for name, path in files.items()},
                 "calibration": {"data": str(data), "frames": len(calibration)}, "drift": drift,
                 "tool": f"nncf {nncf.__version__}, openvino {openvino.__version__}"}
        add_to_bundle(weights, files, {INT8_BACKBONE_KEY: entry})
    log(f"added an int8 backbone to {weights} ({time.perf_counter() - started:.0f} s)")
    return entry
