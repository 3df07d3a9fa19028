"""int8 arms for onnxruntime on a CPU, made from an exported fp32 model directory.

The arms' residual MLPs are most of a restore's arithmetic on a CPU, and there
they already run near the fp32 peak; int8 matrix products (VNNI) do the same
work faster. Only the Gemm/MatMul weights are quantised, per output
channel, with activations quantised per batch at run time (onnxruntime's
dynamic quantisation: no calibration set). The seam convolution stays fp32
(onnxruntime's ConvInteger was 3x slower than its fp32 Conv here), and so do
the exact geometry features and the head, whose score differences decide the
assignment. The int8 graphs use onnxruntime contrib operators: they run on
onnxruntime's CPU provider, not in TensorRT.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from amphisbaena.errors import InputError
from amphisbaena.files import atomic_path
from amphisbaena.model_files import ARMS, FP32, INT8, MANIFEST, MODEL_FILES, load_model_files, sha256_of

INT8_NOTE = (
    "arms' Gemm/MatMul weights int8 per output channel, activations quantised per batch at run time "
    "(onnxruntime dynamic quantisation); seam convolution, geometry features and head in fp32"
)


def quantize_arms(source: Path, out_dir: Path) -> dict:
    """Write SOURCE's model with int8 arms into OUT_DIR (its head graphs copied); return the manifest.
    SOURCE must be an fp32 model directory. The no-partner calibration is dropped: it belongs to the
    fp32 scores, and `export` recalibrates on the new graphs."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = load_model_files(source)
    if model.manifest.get("precision") != FP32:
        raise InputError(f"{source}: int8 arms are made from an fp32 model, this one is {model.manifest.get('precision')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    quantizer_log = logging.getLogger()
    level = quantizer_log.level
    quantizer_log.setLevel(logging.ERROR)  # the quantiser suggests shape pre-processing, which these graphs do not need
    try:
        for side in ARMS:
            with atomic_path(out_dir / MODEL_FILES[side]) as tmp:
                quantize_dynamic(
                    model.path(side), tmp, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"]
                )
    finally:
        quantizer_log.setLevel(level)
    for graph in ("head", "head_topk"):
        with atomic_path(out_dir / MODEL_FILES[graph]) as tmp:
            shutil.copyfile(model.path(graph), tmp)
    manifest = {key: value for key, value in model.manifest.items() if key != "no_partner"}
    manifest.update(
        precision=INT8,
        precision_note=INT8_NOTE,
        quantized_from={name: model.manifest["sha256"][name] for name in (MODEL_FILES["left"], MODEL_FILES["right"])},
        sha256={name: sha256_of(out_dir / name) for name in MODEL_FILES.values()},
    )
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def feature_drift(fp32_dir: Path, int8_dir: Path, left, right) -> dict[str, float]:
    """Max abs difference between the fp32 and the int8 arms' features on the given halves."""
    import numpy as np
    import onnxruntime as ort

    drift = {}
    for side, halves in (("left", left), ("right", right)):
        outputs = [
            ort.InferenceSession(str(directory / MODEL_FILES[side]), providers=["CPUExecutionProvider"]).run(None, {"halves": halves})[0]
            for directory in (fp32_dir, int8_dir)
        ]
        drift[side] = float(np.abs(outputs[0] - outputs[1]).max())
    return drift
