"""Record every aten op of a real PyTorch forward pass.

A :class:`Recorder` runs a ``TorchDispatchMode`` (every aten op, after autograd and
composite decompositions) together with a ``TorchFunctionMode`` that sees
``F.scaled_dot_product_attention`` before it decomposes, so attention is recorded as
one op whatever kernel the host picks for it. For each op it keeps the shapes and
dtypes of its tensors, which operands are (views of) model parameters, and where each
tensor came from (which op produced it, or that it existed before the capture, such
as a KV cache from an earlier call). Module names come from global forward hooks.

What an op is (its kind, GEMM shape, attention geometry) and the records it is kept in live in
:mod:`seedchip.emulate.aten` (re-exported here). Nothing here computes a time:
:mod:`seedchip.emulate.lower` groups the ops into kernels and :mod:`seedchip.emulate.price`
asks the oracle (:mod:`seedchip.perf.ops`).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from .aten import (ATTENTION_OPS, EXTRA_POINTWISE, FREE_OPS, GATHER_OPS, GEMM_OPS, LAYOUT_OPS, MOVE_OPS,
                   REDUCTION_OPS, TRANSCENDENTAL, Capture, CapturedOp, TRef, aten_attention_attrs, attention_attrs,
                   gemm_attrs, generic_name, mask_chunks, op_kind, softmax_pattern)


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).removeprefix("torch.")


def _storage_ptr(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except Exception:  # noqa: BLE001 - sparse / meta / functional tensors
        return -1


# ------------------------------------------------------------------ the recorder

QuantHook = Callable[["Recorder", Any, tuple, dict], Any]


class Recorder:
    """Captures ops while active (``with Recorder() as rec: model(x)``).

    ``quant``, when given, is an object with ``gemm(recorder, func, args, kwargs)``
    and ``attention(q, k, v)`` methods that may replace operands (fake quantization):
    :class:`seedchip.emulate.numerics.Quantizer`.
    """

    def __init__(self, quant=None, *, record: bool = True, model: torch.nn.Module | None = None):
        self.ops: list[CapturedOp] = []
        self.quant = quant
        self.record = record
        self.suppress = 0
        self._meta = WeakIdKeyDictionary()     # tensor -> TRef (root, weight, external)
        self._next_root = 0
        self._param_names: dict[int, str] = {}
        self._module_names: dict[int, str] = {}
        self._indexed: set[int] = set()
        self._stack: list[str] = []
        self._handles: list = []
        self._dispatch = _DispatchMode(self)
        self._function = _FunctionMode(self)
        self._env_old: str | None = None
        self.root_calls = 0
        if model is not None:
            self.index_module(model)

    # -- module / parameter names ---------------------------------------------------
    def index_module(self, root: torch.nn.Module, prefix: str = "") -> None:
        if id(root) in self._indexed:
            return
        self._indexed.add(id(root))
        for name, mod in root.named_modules():
            self._module_names.setdefault(id(mod), f"{prefix}{name}")
            self._indexed.add(id(mod))
        for name, p in root.named_parameters(remove_duplicate=False):
            self._param_names.setdefault(id(p), f"{prefix}{name}")

    def _pre_hook(self, module, args):
        if id(module) not in self._indexed:
            self.index_module(module)
        if not self._stack:
            self.root_calls += 1
        self._stack.append(self._module_names.get(id(module), type(module).__name__))

    def _post_hook(self, module, args, output):
        if self._stack:
            self._stack.pop()

    # -- tensor identity -------------------------------------------------------------
    def _new_root(self) -> int:
        self._next_root += 1
        return self._next_root

    def ref(self, t: torch.Tensor, *, root: int | None = None, weight: str | None = None,
            external: bool = False) -> TRef:
        r = self._meta.get(t)
        if r is not None:
            return r
        if root is None:
            root = self._new_root()
            if isinstance(t, torch.nn.Parameter):
                weight = self._param_names.get(id(t), "param")
                external = False
        try:
            key = (root, int(t.storage_offset()), tuple(t.shape), tuple(t.stride()))
        except Exception:  # noqa: BLE001
            key = (root, 0, tuple(t.shape), ())
        r = TRef(root=root, key=key, shape=tuple(int(s) for s in t.shape), dtype=_dtype_name(t.dtype),
                 floating=t.is_floating_point() or t.is_complex(), itemsize=t.element_size(), weight=weight,
                 external=external)
        try:
            self._meta[t] = r
        except TypeError:
            pass
        return r

    def input_ref(self, t: torch.Tensor) -> TRef:
        r = self._meta.get(t)
        if r is not None:
            return r
        return self.ref(t, external=not isinstance(t, torch.nn.Parameter))

    def is_weight(self, t: torch.Tensor) -> str | None:
        r = self._meta.get(t)
        if r is not None:
            return r.weight
        if isinstance(t, torch.nn.Parameter):
            return self._param_names.get(id(t), "param")
        return None

    # -- recording -------------------------------------------------------------------
    def _record(self, target: str, kind: str, args, kwargs, out, attrs: dict | None = None) -> None:
        flat_in = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        ins = [self.input_ref(a) for a in flat_in]
        in_ptrs = {}
        for a, r in zip(flat_in, ins):
            in_ptrs.setdefault(_storage_ptr(a), r)
        outs = []
        for o in tree_flatten(out)[0]:
            if not isinstance(o, torch.Tensor):
                continue
            existing = self._meta.get(o)
            if existing is not None:             # in-place op: returns its input
                outs.append(existing)
                continue
            base = in_ptrs.get(_storage_ptr(o)) if o.numel() else None
            if base is not None:                 # a view / alias of an input
                outs.append(self.ref(o, root=base.root, weight=base.weight, external=base.external))
            else:
                outs.append(self.ref(o, root=self._new_root()))
        op = CapturedOp(index=len(self.ops), target=target, kind=kind, inputs=ins, outputs=outs,
                        module=self._stack[-1] if self._stack else "", attrs=attrs or {})
        if kind == "gemm":
            op.attrs.update(gemm_attrs(target, ins, outs, args, self))
        elif kind == "vector" and target.split(".")[1] in ("_softmax", "_safe_softmax"):
            op.attrs.update(softmax_pattern(out))
        elif kind == "attention" and not attrs:
            op.attrs.update(aten_attention_attrs(target, args, kwargs))
        self.ops.append(op)

    def on_dispatch(self, func, types, args, kwargs):
        kind = op_kind(func)
        if self.quant is not None and kind == "gemm" and not self.suppress:
            out = self.quant.gemm(self, func, args, kwargs)
        else:
            out = func(*args, **kwargs)
        if self.record and not self.suppress:
            self.suppress += 1
            try:
                self._record(str(func), kind, args, kwargs, out)
            finally:
                self.suppress -= 1
        return out

    def on_sdpa(self, func, args, kwargs):
        """F.scaled_dot_product_attention: one attention op, whatever the host runs."""
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        bound = dict(zip(names, args))
        bound.update(kwargs)
        q, k, v = bound["query"], bound["key"], bound["value"]
        if self.quant is not None:
            k, v = self.quant.kv(k, v)
            bound["key"], bound["value"] = k, v
        self.suppress += 1
        try:
            out = func(**bound)
            attrs = None
            if self.record:
                try:
                    attrs = attention_attrs(q, k, v, bound.get("attn_mask"), bool(bound.get("is_causal", False)),
                                            bool(bound.get("enable_gqa", False)))
                except Exception as e:  # noqa: BLE001 - an attention we cannot read stays unpriced
                    attrs = {"error": f"{type(e).__name__}: {e}"}
                tensors = [t for t in (q, k, v, bound.get("attn_mask")) if isinstance(t, torch.Tensor)]
                self._record("sdpa", "attention" if "error" not in attrs else "unknown", tuple(tensors), {}, out,
                             attrs)
        finally:
            self.suppress -= 1
        return out

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> "Recorder":
        from torch.nn.modules import module as _m
        self._handles = [_m.register_module_forward_pre_hook(self._pre_hook),
                         _m.register_module_forward_hook(self._post_hook, always_call=True)]
        # transformers: hand GQA key/value heads to SDPA unexpanded (enable_gqa), so the
        # capture sees the real KV heads and no repeat_kv copies
        self._env_old = os.environ.get("TRANSFORMERS_SDPA_FORCE_GQA")
        os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = "1"
        self._function.__enter__()
        self._dispatch.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._dispatch.__exit__(*exc)
            self._function.__exit__(*exc)
        finally:
            for h in self._handles:
                h.remove()
            self._handles = []
            self._stack.clear()
            if self._env_old is None:
                os.environ.pop("TRANSFORMERS_SDPA_FORCE_GQA", None)
            else:
                os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = self._env_old

    def take(self, label: str = "") -> Capture:
        """The ops recorded since the last take, as one :class:`Capture`."""
        c = Capture(ops=self.ops, label=label)
        self.ops = []
        return c


class _DispatchMode(TorchDispatchMode):
    def __init__(self, rec: Recorder):
        super().__init__()
        self.rec = rec

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self.rec.on_dispatch(func, types, args, kwargs or {})


class _FunctionMode(TorchFunctionMode):
    def __init__(self, rec: Recorder):
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and not self.rec.suppress:
            return self.rec.on_sdpa(func, args, kwargs)
        return func(*args, **kwargs)


__all__ = ["Recorder", "Capture", "CapturedOp", "TRef", "op_kind", "attention_attrs", "mask_chunks", "gemm_attrs",
           "softmax_pattern", "generic_name", "GEMM_OPS", "ATTENTION_OPS", "FREE_OPS", "LAYOUT_OPS", "REDUCTION_OPS",
           "MOVE_OPS", "EXTRA_POINTWISE", "GATHER_OPS", "TRANSCENDENTAL"]
