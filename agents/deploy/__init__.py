"""Deployment: ONNX export of a training run, and the device runtime that runs it.

``OnnxPolicy`` and ``DeviceFeatures`` (``runtime``) import NumPy and ONNX Runtime only, so a device needs neither the
simulator nor PyTorch; ``export_run`` / ``export_model`` (``export``) import PyTorch and the training code when called.
"""

from .export import OPSET, export_model, export_run, torch_logits
from .runtime import DeviceFeatures, OnnxPolicy

__all__ = ["OPSET", "DeviceFeatures", "OnnxPolicy", "export_model", "export_run", "torch_logits"]
