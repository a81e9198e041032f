import torch

from encoders.config import EncoderConfig
from encoders.model import tiny_random_model
from encoders.precision import cpu_has_bf16, describe, uses_bf16
from encoders.ranker import Ranker

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
SUMMARIES = ["Recently purchased: cats, dogs", "Recently viewed: a war film about space"]


def test_explicit_precision_wins_and_auto_follows_the_hardware():
    assert not uses_bf16(CPU, "fp32") and not uses_bf16(CUDA, "fp32")
    assert uses_bf16(CPU, "bf16") and uses_bf16(CUDA, "bf16")
    assert uses_bf16(CUDA, "auto") and uses_bf16(CUDA, "auto", training=True)
    # Serving on CPU stays exact unless asked; training takes native bf16.
    assert not uses_bf16(CPU, "auto")
    assert uses_bf16(CPU, "auto", training=True) == cpu_has_bf16()
    assert describe(CPU, "bf16") == "bf16 autocast" and describe(CPU, "fp32") == "float32"


def test_bf16_scorer_is_close_to_float32_but_really_runs_in_bf16():
    model = tiny_random_model()
    fp32 = Ranker(model, EncoderConfig(device="cpu", precision="fp32"))
    bf16 = Ranker(model, EncoderConfig(device="cpu", precision="bf16"))
    exact, rounded = fp32.encode_users(SUMMARIES), bf16.encode_users(SUMMARIES)
    assert exact.dtype == rounded.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: close, never bit-identical on a real forward.
    assert not torch.equal(exact, rounded)
    torch.testing.assert_close(rounded, exact, atol=0.05, rtol=0.05)
