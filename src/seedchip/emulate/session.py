"""``on_chip``: run the user's own model, unchanged, "on" a chip.

    with seedchip.emulate.on_chip("seedchip-ref", formats={"weights": "fp8", "kv": "fp8"}) as chip:
        logits = model(input_ids)
    print(chip.profile().top(10))     # per-op time on the chip, binding resource
    print(chip.numerics())            # divergence from the full-precision run

Inside the block every aten op is captured and, when the formats are not full
precision, GEMM weights/activations and the KV cache are fake-quantized, so the
block's results are the chip's. Each top-level module call is also run once more in
full precision from a copy of its inputs (``reference=True``) and the two next-token
distributions are compared; a call that updates a KV cache is compared from the same
cache state.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..perf.deployment import Deployment, make_deployment
from .capture import Capture, Recorder
from .lower import lower
from .numerics import Policy, Quantizer, divergence
from .price import Profile, merge_profiles, price


def _logits_of(out):
    if isinstance(out, torch.Tensor):
        return out
    lg = getattr(out, "logits", None)
    if isinstance(lg, torch.Tensor):
        return lg
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    return None


@dataclass
class Numerics:
    """Divergence of the chip-format run from the full-precision run."""
    format: str
    policy: dict
    top1_agreement: float | None
    kl_divergence: float | None
    num_positions: int
    calls: list[dict]
    max_abs_logit_diff: float | None = None
    perplexity: float | None = None
    perplexity_ref: float | None = None

    @property
    def perplexity_delta(self) -> float | None:
        if self.perplexity is None or self.perplexity_ref is None:
            return None
        return self.perplexity - self.perplexity_ref

    def to_dict(self) -> dict:
        d = {"format": self.format, "policy": self.policy, "top1_agreement": self.top1_agreement,
             "kl_divergence": self.kl_divergence, "max_abs_logit_diff": self.max_abs_logit_diff,
             "num_positions": self.num_positions}
        if self.perplexity is not None:
            d.update(perplexity=self.perplexity, perplexity_ref=self.perplexity_ref,
                     perplexity_delta=self.perplexity_delta)
        return d

    def __str__(self) -> str:
        if self.top1_agreement is None:
            return f"numerics ({self.format}): no model call with logits was compared"
        s = (f"numerics ({self.format}) over {self.num_positions} positions: top-1 agreement "
             f"{self.top1_agreement:.4f}, KL {self.kl_divergence:.3e} nats")
        if self.perplexity is not None:
            s += f", perplexity {self.perplexity:.3f} vs {self.perplexity_ref:.3f} ({self.perplexity_delta:+.3f})"
        return s


def _stateless(args, kwargs) -> bool:
    """No argument carries state a call could mutate (a KV cache object)."""
    from torch.utils._pytree import tree_flatten
    for x in tree_flatten((args, kwargs))[0]:
        if x is not None and not isinstance(x, (torch.Tensor, int, float, bool, str)):
            return False
    return True


def summarize(calls: list[dict], policy: Policy) -> Numerics:
    n = sum(c["num_positions"] for c in calls)
    if not n:
        return Numerics(policy.label(), policy.to_dict(), None, None, 0, calls)
    top1 = sum(c["top1_agreement"] * c["num_positions"] for c in calls) / n
    kl = sum(c["kl_divergence"] * c["num_positions"] for c in calls) / n
    mx = max(c["max_abs_logit_diff"] for c in calls)
    return Numerics(policy.label(), policy.to_dict(), top1, kl, n, calls, mx)


class ChipSession:
    """What ``on_chip`` returns: the capture, the quantizer and the comparisons."""

    def __init__(self, chip, formats=None, *, calibration: str | None = None, reference: bool = True,
                 fuse: bool = True, model: torch.nn.Module | None = None, num_chips: int = 1):
        self.policy = Policy.from_formats(formats)
        pf = self.policy.pricing()
        self.deployment: Deployment = make_deployment(chip, num_chips=num_chips, weight_format=pf.weights,
                                                      act_format=pf.activations, kv_format=pf.kv,
                                                      calibration=calibration)
        self.pricing = pf
        self.fuse = fuse
        self.reference = reference
        self.quantizer = None if self.policy.is_identity else Quantizer(self.policy)
        self.recorder = Recorder(quant=self.quantizer, model=model)
        self.calls: list[tuple[int, int, str]] = []     # (first op, end op, module) per top-level call
        self.comparisons: list[dict] = []
        self._depth = 0
        self._saved = None
        self._start = 0
        self._in_reference = False
        self._handles: list = []
        self._root_hooked: set[int] = set()
        self._model = model

    # -- top-level call tracking ------------------------------------------------------
    def _pre(self, module, args):
        if self._in_reference:
            return None
        if self._depth == 0:
            self._start = len(self.recorder.ops)
            self._saved = None
            self._hook_root(module)
        self._depth += 1
        return None

    def _hook_root(self, module) -> None:
        """A module-level pre-hook (which, unlike the global one, sees keyword
        arguments) snapshots a top-level call's inputs before the call mutates a cache."""
        if id(module) in self._root_hooked or not (self.reference and self.quantizer is not None):
            return
        self._root_hooked.add(id(module))
        self._handles.append(module.register_forward_pre_hook(self._root_pre, with_kwargs=True))

    def _root_pre(self, module, args, kwargs):
        if self._in_reference or self._depth != 1:
            return None
        self.recorder.suppress += 1
        try:
            self._saved = copy.deepcopy((args, kwargs))
        except Exception:  # noqa: BLE001 - inputs that cannot be copied are not compared
            self._saved = None
        finally:
            self.recorder.suppress -= 1
        return None

    def _post(self, module, args, kwargs, output):
        if self._in_reference:
            return None
        self._depth -= 1
        if self._depth == 0:
            self.calls.append((self._start, len(self.recorder.ops), type(module).__name__))
            if self.reference and self.quantizer is not None:
                saved = self._saved
                if saved is None and _stateless(args, kwargs):
                    saved = (args, kwargs)       # first call of this module: nothing was mutated
                if saved is not None:
                    self._saved = saved
                    self._compare(module, output)
            self._saved = None
        return None

    def _compare(self, module, output):
        test = _logits_of(output)
        if test is None:
            return
        args, kwargs = self._saved
        rec = self.recorder
        quant, rec.quant = rec.quant, None
        rec.suppress += 1
        self._in_reference = True
        try:
            with torch.no_grad():
                ref = _logits_of(module(*args, **kwargs))
        finally:
            self._in_reference = False
            rec.suppress -= 1
            rec.quant = quant
        if ref is not None and ref.shape == test.shape:
            d = divergence(ref, test)
            d["module"] = type(module).__name__
            self.comparisons.append(d)

    # -- context manager --------------------------------------------------------------
    def __enter__(self) -> "ChipSession":
        from torch.nn.modules import module as _m
        self._handles = [_m.register_module_forward_pre_hook(self._pre),
                         _m.register_module_forward_hook(self._post, with_kwargs=True, always_call=True)]
        if self._model is not None:
            self._hook_root(self._model)
        self.recorder.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.recorder.__exit__(*exc)
        finally:
            for h in self._handles:
                h.remove()
            self._handles = []

    # -- results ----------------------------------------------------------------------
    def capture(self, call: int | None = None) -> Capture:
        """Every op recorded (``call=None``) or those of one top-level module call."""
        ops = self.recorder.ops
        if call is None:
            return Capture(ops=list(ops), label="session")
        start, end, name = self.calls[call]
        sub = ops[start:end]
        return Capture(ops=sub, label=f"call {call}: {name}")

    def profile(self, call: int | None = None) -> Profile:
        """Per-op time and energy on the chip: the whole block, or one top-level call."""
        if call is None and self.calls:
            profs = [self._price(self.capture(i)) for i in range(len(self.calls))]
            covered = sum(e - s for s, e, _ in self.calls)
            if covered < len(self.recorder.ops):          # ops outside any module call
                rest = [o for o in self.recorder.ops if not any(s <= o.index < e for s, e, _ in self.calls)]
                profs.append(self._price(Capture(ops=rest, label="outside modules")))
            return merge_profiles(profs)
        return self._price(self.capture(call))

    def _price(self, cap: Capture) -> Profile:
        act_bytes = 2.0
        return price(lower(cap, act_bytes=act_bytes, fuse=self.fuse), self.deployment, self.pricing)

    def numerics(self) -> Numerics:
        return summarize(self.comparisons, self.policy)


def on_chip(chip, formats=None, *, calibration: str | None = None, reference: bool = True, fuse: bool = True,
            model: torch.nn.Module | None = None) -> ChipSession:
    """Context manager: run PyTorch code on ``chip`` (a catalog id, YAML path or
    ChipSpec) in ``formats`` (None: full precision; "fp8"; or a dict with weights,
    activations, kv). See the module doc."""
    return ChipSession(chip, formats, calibration=calibration, reference=reference, fuse=fuse, model=model)
