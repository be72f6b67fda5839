"""SeedChip: design, deploy and plan an in-house LLM inference accelerator before its
silicon exists.

    import seedchip
    seedchip.op("gemm", chip="h200-sxm", m=1, n=8192, k=8192, format="fp8").to_dict()
    seedchip.estimate(chip="h200-sxm", model="llama-3.1-70b", num_chips=8, tp=8,
                      weight_format="fp8", kv_format="fp8", batch=64).to_dict()
"""

from .api import (Deployment, EstimateResult, OpResult, StepCost, capacity, chips, engines, estimate,
                  load_calibration, load_chip, load_model, make_deployment, memory_plan, models, op, simulate,
                  step_cost, validate_e2e)
from .errors import (DoesNotFitError, ParallelismError, SeedChipError, SpecError, UnknownNameError,
                     UnsupportedArchitectureError)
from . import emulate, explore, silicon
from .headline import run

from .version import __version__


def __getattr__(name: str):
    """``seedchip.plan`` is imported on first use (see ``seedchip.api``)."""
    if name == "plan":
        from .fleet import plan
        return plan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["emulate", "explore", "silicon", "plan", "Deployment", "EstimateResult", "OpResult", "StepCost", "chips", "estimate", "load_calibration",
           "load_chip", "load_model", "make_deployment", "memory_plan", "models", "engines", "op", "run", "simulate",
           "capacity", "step_cost", "validate_e2e",
           "SeedChipError", "SpecError", "UnknownNameError", "UnsupportedArchitectureError", "ParallelismError",
           "DoesNotFitError", "__version__"]
