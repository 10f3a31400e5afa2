"""What a device computes from a camera frame before any decision, in one place for the profile build and the device.

The frame profile (``perception.build``) and the device controller (``agents.deploy.controller``) both turn a frame
into model inputs, JPEGs, the calibrated top-k, the compact embedding and the distilled estimates with these
functions, so a deployed device computes exactly what the policy was trained on. NumPy and Pillow only: no models
are loaded here (the networks run in ONNX Runtime, wherever the caller runs them).
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

CROP_FRACTION = 0.875  # resize the shorter side to res / 0.875, then centre-crop res x res
MEAN, STD = 0.498, 0.502  # EfficientNet-Lite normalisation: (x / 255 - MEAN) / STD
# the distilled head's weights, as the profile's device arrays name them
HEAD_KEYS = ("distill_mu", "distill_sd", "distill_w0", "distill_b0", "distill_w1", "distill_b1")
PROJECTION_KEYS = ("embed_mean", "embed_components")
# ONNX Runtime session option for int8 models on x86 CPUs without VNNI (AVX2, AVX-512 without VNNI): their fast
# uint8 x int8 kernels saturate 16-bit intermediate sums, so the int8 student's outputs depend on the CPU (measured
# on the committed student: calibrated confidences off by up to 0.58 on an AVX2 machine). "1" selects exact
# uint8 x uint8 arithmetic there, which gives the same logits as VNNI machines (bit for bit on the committed
# profile's frames); elsewhere it changes nothing.
EXACT_INT8 = ("session.x64quantprecision", "1")


def resize_crop(img: Image.Image, res: int) -> Image.Image:
    """Resize the shorter side to ``res / 0.875`` and centre-crop ``res x res`` (the models' evaluation transform)."""
    short = round(res / CROP_FRACTION)
    w, h = img.size
    scale = short / min(w, h)
    nw, nh = max(res, round(w * scale)), max(res, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - res) // 2, (nh - res) // 2
    return img.crop((left, top, left + res, top + res))


def to_input(img: Image.Image) -> NDArray[np.float32]:
    """An RGB image already at model size -> normalised CHW float32."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    return ((arr / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    """Baseline JPEG encoding (Pillow, fixed quality, 4:2:0): what the device puts on the wire."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def softmax(logits: NDArray, temperature: float = 1.0) -> NDArray[np.float64]:
    """Numerically stable softmax of ``logits / temperature`` along the last axis (float64)."""
    z = np.asarray(logits, np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def calibrated_topk(logits: NDArray, temperature: float, k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The student's calibrated top-k: probabilities [N, k] (float32, descending, as the profile stores them) and
    classes [N, k], from its logits [N, C] and the profile's temperature."""
    p = softmax(logits, temperature)
    top = np.argsort(-p, axis=1)[:, :k]
    return np.take_along_axis(p, top, 1).astype(np.float32), top.astype(np.int64)


def project(features: NDArray, mean: NDArray, components: NDArray) -> NDArray[np.float32]:
    """The compact embedding before storage: ``(features - mean) @ components`` ([N, F] -> [N, D], float32)."""
    return (np.asarray(features, np.float32) - mean) @ components


def embedding(features: NDArray, mean: NDArray, components: NDArray) -> NDArray[np.float16]:
    """The embedding exactly as the profile holds it: the pooled features stored as float16, projected, stored as
    float16 again (``perception.build`` keeps both in float16)."""
    return project(np.asarray(features).astype(np.float16), mean, components).astype(np.float16)


def distill_inputs(embedding: NDArray, topk_prob: NDArray) -> NDArray[np.float32]:
    """The distilled head's input per frame: embedding, calibrated top-k probabilities, margin and log of the top-1."""
    p = np.asarray(topk_prob, np.float32)
    extra = [p[:, :1] - p[:, 1:2] if p.shape[1] > 1 else p[:, :1], np.log(np.maximum(p[:, :1], 1e-6))]
    return np.concatenate([np.asarray(embedding, np.float32), p, *extra], axis=1)


def distilled(inputs: NDArray, mu: NDArray, sd: NDArray, w0: NDArray, b0: NDArray, w1: NDArray,
              b1: NDArray) -> NDArray[np.float32]:
    """The distilled head: standardise, one hidden ReLU layer, sigmoid outputs ([N, input_dim] -> [N, R + 2])."""
    h = np.maximum(((np.asarray(inputs, np.float32) - mu) / sd) @ w0 + b0, 0.0)
    z = np.clip(h @ w1 + b1, -30, 30)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
