"""Static int8 quantization of the student (the "NPU" model) with ONNX Runtime: QDQ format, per-channel weights."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from offload_common.files import atomic_write_bytes


def quantize_student(float_onnx: str | os.PathLike, calibration_inputs: NDArray[np.float32],
                     out: str | os.PathLike, batch: int = 16) -> Path:
    """Quantize ``float_onnx`` to int8 using ``calibration_inputs`` (preprocessed NCHW, disjoint from evaluation).

    Activations are uint8 and weights int8 per output channel (ORT's recommended x86 combination), with min/max
    ranges collected on the calibration frames. Written atomically to ``out``.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_inputs) == 0:
        raise ValueError("int8 calibration needs at least one calibration frame")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._chunks = iter([calibration_inputs[i:i + batch] for i in range(0, len(calibration_inputs), batch)])

        def get_next(self) -> dict | None:
            chunk = next(self._chunks, None)
            return None if chunk is None else {"x": np.ascontiguousarray(chunk, dtype=np.float32)}

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(float_onnx), str(prepped), skip_symbolic_shape=True)
        staged = Path(tmp) / "int8.onnx"
        quantize_static(str(prepped), str(staged), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        atomic_write_bytes(out, staged.read_bytes())
    return out
