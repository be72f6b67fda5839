"""Model layer: Hugging Face configs normalised into :class:`ModelArch`, parameter counts,
and the shipped model zoo."""

from .arch import ModelArch
from .hf import SUPPORTED_ARCHITECTURES, arch_from_hf_config
from .params import ParamCounts, count_params
from .zoo import load_model, zoo_ids

__all__ = [
    "ModelArch",
    "ParamCounts",
    "SUPPORTED_ARCHITECTURES",
    "arch_from_hf_config",
    "count_params",
    "load_model",
    "zoo_ids",
]
