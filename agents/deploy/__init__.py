"""Deployment: ONNX export of a training run, the device bundle, and the device side that runs it.

``OnnxPolicy`` and ``DeviceFeatures`` (``runtime``), ``load_bundle`` (``bundle``) and ``DeviceController``
(``controller``: a policy on raw camera frames, from a bundle alone) import NumPy, ONNX Runtime, Pillow and
``offload_common`` only, so a device needs neither the simulator nor PyTorch; ``export_run`` / ``export_model``
(``export``) and ``write_bundle`` import PyTorch and the training code when called.
"""

from .bundle import Bundle, BundleError, load_bundle, write_bundle
from .controller import Decision, DeviceController, Perception
from .export import OPSET, export_model, export_run, torch_logits
from .runtime import DeviceFeatures, OnnxPolicy

__all__ = ["OPSET", "Bundle", "BundleError", "Decision", "DeviceController", "DeviceFeatures", "OnnxPolicy",
           "Perception", "export_model", "export_run", "load_bundle", "torch_logits", "write_bundle"]
