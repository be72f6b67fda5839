"""Numeric formats are values: a format knows its bits and its block-scale overhead,
so bytes per element can be fractional (4-bit values with one 8-bit scale per 16
values take 4.5 bits = 9/16 byte)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownNameError


@dataclass(frozen=True)
class NumericFormat:
    name: str
    bits: int                   # bits of one value
    scale_bits: int = 0         # bits of one shared scale
    block_size: int = 0         # values sharing one scale (0: per-tensor, negligible)
    matrix_class: str = "bf16"  # which matrix peak computes in this format
    description: str = ""

    @property
    def bytes_per_element(self) -> float:
        overhead = self.scale_bits / self.block_size if self.block_size else 0.0
        return (self.bits + overhead) / 8.0

    def __str__(self) -> str:
        return self.name


# Matrix peak classes, from the widest to the narrowest; a chip lists a peak per class.
MATRIX_CLASSES = ("bf16", "fp8", "int8", "fp4")
# What a chip without a class's peak falls back to (the value is widened, bytes stay).
FALLBACK = {"fp4": "fp8", "fp8": "bf16", "int8": "bf16", "bf16": None}

FORMATS: dict[str, NumericFormat] = {f.name: f for f in (
    NumericFormat("fp32", 32, matrix_class="bf16", description="IEEE single; matmuls run on the bf16 path"),
    NumericFormat("bf16", 16, matrix_class="bf16", description="bfloat16"),
    NumericFormat("fp16", 16, matrix_class="bf16", description="IEEE half (same matrix rate as bf16)"),
    NumericFormat("fp8", 8, matrix_class="fp8", description="fp8 e4m3/e5m2 with per-tensor or per-channel scales"),
    NumericFormat("fp8-block", 8, scale_bits=32, block_size=128, matrix_class="fp8",
                  description="fp8 with one fp32 scale per 128 values (DeepSeek-V3 style 1x128 blocks)"),
    NumericFormat("int8", 8, matrix_class="int8", description="int8 with per-channel scales"),
    NumericFormat("fp4", 4, scale_bits=8, block_size=16, matrix_class="fp4",
                  description="4-bit e2m1 values, one 8-bit scale per 16 values (NVFP4-style): 9/16 byte"),
    NumericFormat("mxfp4", 4, scale_bits=8, block_size=32, matrix_class="fp4",
                  description="OCP MX fp4: e2m1 values, one e8m0 scale per 32 values: 17/32 byte"),
)}


def get_format(name: str | NumericFormat) -> NumericFormat:
    if isinstance(name, NumericFormat):
        return name
    key = str(name).strip().lower()
    try:
        return FORMATS[key]
    except KeyError:
        raise UnknownNameError("format", str(name), FORMATS) from None


def wider(a: NumericFormat, b: NumericFormat) -> NumericFormat:
    """The wider of two formats (by value bits): a matmul of a and b computes in it."""
    return a if a.bits >= b.bits else b
