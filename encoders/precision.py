"""Which number format the towers compute in: one decision for serving, evaluation and training.

bf16 autocast cuts the cost of the matmuls wherever the hardware has bf16
units: every CUDA device we run on, and CPUs with AVX512-BF16 or AMX such as
this project's CI machine (docs/model.md, "Number format (bf16)"). On CPUs
without them bf16 is emulated and slower.

``auto`` differs by purpose. Serving and evaluation use bf16 on CUDA only: in
bf16 a user's scores depend on the shape of the batch it was computed in, so
the stream's scorer and the offline evaluator would no longer give the same
top-10 for every user, and on CPU exact parity is kept unless
bf16 is asked for. Training uses bf16 wherever it is native, since its result
is judged by the evaluator, in the serving precision.
"""

from __future__ import annotations

import contextlib
from functools import cache

import torch

from encoders.config import Precision


@cache
def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(torch.backends.mkldnn.is_available() and check is not None and check())
    except RuntimeError:
        return False


def uses_bf16(device: torch.device, precision: Precision, *, training: bool = False) -> bool:
    """Whether the towers run under bf16 autocast on ``device`` (see the module doc)."""
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (training and device.type == "cpu" and cpu_has_bf16())


def autocast_for(
    device: torch.device, precision: Precision = "auto", *, training: bool = False
) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast when :func:`uses_bf16`, nothing otherwise."""
    if uses_bf16(device, precision, training=training):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device, precision: Precision) -> str:
    """Short name of the serving number format, for reports and benchmark tables."""
    return "bf16 autocast" if uses_bf16(device, precision) else "float32"
