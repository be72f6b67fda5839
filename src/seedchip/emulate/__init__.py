"""Run real PyTorch models on the virtual chip: op capture and number-format emulation.

Needs the optional extra (``pip install 'seedchip[torch]'``: PyTorch and transformers).
Importing this package does not import torch; the functions below do, when called.

    with seedchip.emulate.on_chip("seedchip-ref", formats={"weights": "fp8", "kv": "fp8"}) as chip:
        logits = model(input_ids)
    print(chip.profile().top(10))
    print(chip.numerics())

    seedchip.emulate.emulate("llama-3.1-8b", layers=2, chip="seedchip-ref").to_dict()

Modules: ``capture`` (aten ops of a forward pass), ``lower`` (ops -> kernels),
``price`` (kernels -> the oracle), ``numerics`` (fake quantization and divergence),
``session`` (``on_chip``), ``hf_models`` (build from config.json), ``run`` (``emulate``).
"""

from __future__ import annotations

from ..errors import SeedChipError


class TorchMissingError(SeedChipError, ImportError):
    """The torch extra is not installed."""


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TorchMissingError("seedchip.emulate needs PyTorch: pip install 'seedchip[torch]'") from None


def on_chip(chip, formats=None, **kwargs):
    """Context manager: run PyTorch code on ``chip`` in ``formats``
    (see :func:`seedchip.emulate.session.on_chip`)."""
    _need_torch()
    from .session import on_chip as _on_chip
    return _on_chip(chip, formats, **kwargs)


def emulate(model: str, **kwargs):
    """Build ``model`` (zoo id or HF directory), generate on the chip, price and compare
    (see :func:`seedchip.emulate.run.emulate`)."""
    _need_torch()
    from .run import emulate as _emulate
    return _emulate(model, **kwargs)


__all__ = ["on_chip", "emulate", "TorchMissingError"]
