"""Group captured aten ops into the kernels a chip would run (no times here).

The oracle prices kernels, not aten ops: a host framework spells an RMSNorm as seven
aten ops, a chip runs one kernel. Three passes, each the standard compiler fusion a
serving engine does, make the captured trace comparable to the config-based graph:

1. **Horizontal GEMM fusion**: GEMMs of one module that read the same activation with
   weights of the same depth become one GEMM (q/k/v -> qkv, gate/up -> gate_up), as
   vLLM's ``QKVParallelLinear`` and ``MergedColumnParallelLinear`` do.
2. **MoE expert loops**: per-expert GEMMs on slices of one 3-D expert weight become
   one grouped GEMM (groups = experts that received tokens); ``aten._grouped_mm`` is
   one already. Around an expert module's GEMMs the kernels MoE runtimes run are added
   or kept apart, as in the config path: the sort of the routed rows before the first,
   the combine of the experts' outputs after the last as a kernel of its own.
3. **Vector regions**: the memory-bound ops between two compute kernels fuse into one
   vector kernel whose HBM bytes are what enters the region from outside plus what
   leaves it (what is produced and consumed inside stays on chip). A region of pure
   layout copies and dtype casts folds away (a real kernel reads the layout it needs);
   ``cat`` onto a tensor that existed before the call (a KV cache) writes only the
   appended rows, as a paged cache does.

Ops of unknown kind become ``unpriced`` kernels, listed by name, never dropped.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from ..perf.graph import moe_sort_bytes
from .aten import MOVE_OPS, TRANSCENDENTAL, Capture, CapturedOp, TRef, generic_name

COMPUTE = ("gemm", "attention")


@dataclass
class Kernel:
    """One kernel for the oracle. ``kind``: gemm | attention | vector | unpriced."""
    name: str
    kind: str
    ops: list[int]                         # indices of the captured ops it covers
    params: dict = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)   # the aten ops it covers

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "num_aten_ops": len(self.ops), "params": _jsonable(self.params)}


def _jsonable(d):
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items() if k not in ("a_key",)}
    if isinstance(d, (list, tuple)):
        return [_jsonable(x) for x in d]
    return d


def _module_name(op: CapturedOp) -> str:
    return generic_name(op.module) if op.module else ""


def _weight_module(w: str | None) -> str:
    if not w:
        return ""
    for suffix in (".weight", ".bias"):
        if w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _gemm_name(op: CapturedOp) -> str:
    w = op.attrs.get("weight")
    if w and w != "param":
        return generic_name(_weight_module(w))
    return _module_name(op) or op.target.split(".")[1]


# ------------------------------------------------------------------ pass 1 + 2: GEMMs

def _gemm_kernels(ops: list[CapturedOp], fuse: bool) -> dict[int, Kernel]:
    """Kernel per GEMM op index (merged GEMMs map to the first op's index; the others
    map to None via the returned ``absorbed`` set)."""
    kernels: dict[int, Kernel] = {}
    absorbed: set[int] = set()
    open_by_input: dict[tuple, int] = {}          # (a_key, k, parent, weight-ness) -> kernel op index
    expert_groups: dict[tuple, int] = {}          # (weight root, module) -> kernel op index
    for op in ops:
        if op.kind != "gemm":
            continue
        a = op.attrs
        if "error" in a:
            kernels[op.index] = Kernel(op.target, "unpriced", [op.index], {"reason": a["error"]}, [op.target])
            continue
        name = _gemm_name(op)
        params = {"m": a["m"], "n": a["n"], "k": a["k"], "groups": a["groups"], "weight": a.get("weight"),
                  "weight_names": [a["weight"]] if a.get("weight") else [], "rows": a.get("rows"),
                  "grouped": bool(a.get("grouped"))}
        w_ref = _weight_ref(op)
        # pass 2: a per-expert GEMM on a slice of a 3-D expert weight (eager MoE loops)
        if fuse and w_ref is not None and a["groups"] == 1 and _is_expert_slice(op, w_ref):
            key = (w_ref.root, op.module.rsplit(".", 1)[0] if op.module else "")
            first = expert_groups.get(key)
            if first is not None:
                k = kernels[first]
                k.params["groups"] += 1
                k.params["rows"] += a["m"]
                k.params["m"] = max(1, math.ceil(k.params["rows"] / k.params["groups"]))
                k.ops.append(op.index)
                k.targets.append(op.target)
                absorbed.add(op.index)
                continue
            params.update(grouped=True, rows=a["m"])
            expert_groups[key] = op.index
            kernels[op.index] = Kernel(name, "gemm", [op.index], params, [op.target])
            continue
        # pass 1: horizontal fusion over one activation
        if fuse and a.get("weight") and a["groups"] == 1 and not a.get("grouped"):
            parent = _parent(_weight_module(a["weight"])) if a["weight"] != "param" else op.module
            key = (a["a_key"], a["k"], parent)
            first = open_by_input.get(key)
            if first is not None and first in kernels:
                k = kernels[first]
                k.params["n"] += a["n"]
                k.params["weight_names"].append(a["weight"])
                k.ops.append(op.index)
                k.targets.append(op.target)
                leaf = generic_name(_weight_module(a["weight"])).rsplit(".", 1)[-1]
                k.name = f"{k.name}+{leaf}"
                absorbed.add(op.index)
                continue
            open_by_input[key] = op.index
        kernels[op.index] = Kernel(name, "gemm", [op.index], params, [op.target])
    for i in absorbed:
        kernels[i] = None  # type: ignore[assignment]
    return kernels


def _weight_ref(op: CapturedOp) -> TRef | None:
    for r in op.inputs:
        if r.weight:
            return r
    return None


def _is_expert_slice(op: CapturedOp, w: TRef) -> bool:
    """A 2-D view of a weight whose storage holds more than this view: a slice of a
    stacked (experts, ...) parameter. Recognised by name (experts) or by 3-D params."""
    name = (w.weight or "").lower()
    return "expert" in name and "shared" not in name and len(w.shape) == 2 and op.attrs.get("k", 0) > 0 \
        and _root_numel_hint(w) > w.numel


def _root_numel_hint(w: TRef) -> int:
    # the view's storage offset tells that the parameter holds more than this slice
    offset = w.key[1] if len(w.key) > 1 else 0
    return offset + w.numel + (1 if offset == 0 else 0)


# ------------------------------------------------------------------ pass 3: vector regions

def _elem_bytes(r: TRef, act_bytes: float) -> float:
    return act_bytes if r.floating else float(r.itemsize)


def _op_flops(op: CapturedOp) -> float:
    name = op.target.split(".")[1] if "." in op.target else op.target
    out = sum(r.numel for r in op.outputs)
    inp = max((r.numel for r in op.inputs), default=0)
    if name in ("_softmax", "softmax", "_log_softmax", "_safe_softmax", "logsumexp"):
        return 5.0 * inp
    if name in ("native_layer_norm", "_fused_rms_norm", "rms_norm", "layer_norm", "native_group_norm"):
        return 5.0 * inp
    if name in ("sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "prod", "var", "std", "norm",
                "linalg_vector_norm", "cumsum", "any", "all", "topk", "sort", "histc"):
        return float(inp)
    if name in MOVE_OPS or name.rstrip("_") in MOVE_OPS:
        return 0.0
    return (4.0 if name.rstrip("_") in TRANSCENDENTAL else 1.0) * out


def _region_kernel(region: list[CapturedOp], consumers: dict[int, list[int]], producer: dict[int, int],
                   act_bytes: float, kind_hint: str = "vector") -> Kernel:
    idx = {op.index for op in region}
    reads: dict[tuple, float] = {}
    writes: dict[tuple, float] = {}
    live: set[int] = set()
    flops = 0.0
    for op in region:
        name = op.target.split(".")[1] if "." in op.target else op.target
        flops += _op_flops(op)
        append = name == "cat" and any(r.external for r in op.inputs) and any(not r.external for r in op.inputs)
        for j, r in enumerate(op.inputs):
            if r.root in live:
                continue                         # produced or updated in place inside the region
            if append and r.external:
                continue                         # the cached rows stay where they are
            if name in ("embedding",) and j == 0 or name in ("index", "index_select", "gather", "_unsafe_index",
                                                              "take") and j == 0:
                nbytes = sum(o.numel for o in op.outputs) * _elem_bytes(r, act_bytes)   # rows gathered
            else:
                nbytes = r.numel * _elem_bytes(r, act_bytes)
            reads[r.key] = max(reads.get(r.key, 0.0), nbytes)
        for r in op.outputs:
            live.add(r.root)
            later = [c for c in consumers.get(r.root, ()) if c > op.index]
            if later and all(c in idx for c in later):
                continue
            if append:
                nbytes = sum(x.numel for x in op.inputs if not x.external) * _elem_bytes(r, act_bytes)
            else:
                nbytes = r.numel * _elem_bytes(r, act_bytes)
            writes[r.key] = max(writes.get(r.key, 0.0), nbytes)
    names = []
    for op in region:
        n = op.target.split(".")[1] if "." in op.target else op.target
        if n not in names:
            names.append(n)
    mods = [_module_name(op) for op in region if op.module]
    where = _common_prefix(mods)
    label = f"{where}:" if where else ""
    label += "+".join(names[:4]) + ("+..." if len(names) > 4 else "")
    return Kernel(label, kind_hint, [op.index for op in region],
                  {"flops": flops, "hbm_bytes": sum(reads.values()) + sum(writes.values()),
                   "read_bytes": sum(reads.values()), "write_bytes": sum(writes.values())},
                  [op.target for op in region])


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    parts = [n.split(".") for n in names]
    out = []
    for segs in zip(*parts):
        if all(s == segs[0] for s in segs):
            out.append(segs[0])
        else:
            break
    return ".".join(out)


# ------------------------------------------------------------------ eager attention

def _eager_attention(ops: list[CapturedOp], producer: dict[int, int]) -> tuple[dict[int, Kernel], set[int]]:
    """Attention written out as matmul -> (scale, mask, sinks) -> softmax -> matmul
    (transformers' eager path): the span from the first matmul to the second becomes
    one attention kernel. The mask is read off the softmax's probabilities."""
    starts: dict[int, Kernel] = {}
    covered: set[int] = set()
    gemm_ix = [o.index for o in ops if o.kind == "gemm" and not o.attrs.get("weight") and "error" not in o.attrs]
    for s in ops:
        if "chunks" not in s.attrs or s.kind != "vector":
            continue
        before = [i for i in gemm_ix if i < s.index]
        after = [i for i in gemm_ix if i > s.index]
        if not before or not after:
            continue
        g1, g2 = ops[before[-1]], ops[after[0]]
        if g1.index in covered:
            continue
        a1, a2 = g1.attrs, g2.attrs
        lk = s.attrs["kv_len"]
        if not (a1["groups"] == a2["groups"] and a1["m"] == a2["m"] == s.attrs["q_len"]
                and a2["k"] in (a1["n"], lk) and abs(lk - a1["n"]) <= 1):
            continue
        between = [o for o in ops[g1.index + 1:g2.index] if o.kind in ("gemm", "attention", "unknown")]
        if between:
            continue
        chunks, window, ctx = s.attrs["chunks"], s.attrs["window"], s.attrs["decode_context"]
        if any(o.target.startswith("aten.cat.") and any(r.weight for r in o.inputs)
               for o in ops[g1.index + 1:s.index]):
            # attention sinks (gpt-oss): one learned logit per head joins the softmax as an
            # extra column; it is not a key of the cache
            chunks = [(q, max(0, c - 1)) for q, c in chunks]
            window = max(0, window - 1) if window else 0
            ctx = [max(1, x - 1) for x in ctx]
        batch = max(1, s.attrs["batch"])
        heads = max(1, a1["groups"] // batch)
        kv_heads = _kv_heads_of(ops, g1, producer) or heads
        params = {"phase": "decode" if s.attrs["q_len"] == 1 else "prefill", "batch": batch, "heads": heads,
                  "kv_heads": kv_heads if heads % kv_heads == 0 else heads, "q_len": s.attrs["q_len"],
                  "kv_len": a1["n"], "qk_dim": a1["k"], "v_dim": a2["n"], "chunks": chunks,
                  "window": window, "causal": s.attrs["causal"], "decode_context": ctx, "eager": True}
        span = list(range(g1.index, g2.index + 1))
        starts[g1.index] = Kernel("attention_" + params["phase"], "attention", span, params,
                                  [ops[i].target for i in span])
        covered.update(span)
    return starts, covered


def _kv_heads_of(ops: list[CapturedOp], g: CapturedOp, producer: dict[int, int]) -> int | None:
    """KV heads behind the key operand of QK^T, looking through repeat_kv's expand and
    copy to the tensor the cache holds, laid out (batch, kv_heads, tokens, dim)."""
    if len(g.inputs) < 2:
        return None
    r = g.inputs[-1]
    for _ in range(6):
        p = producer.get(r.root)
        if p is None:
            return r.shape[-3] if len(r.shape) == 4 else None
        op = ops[p]
        if op.kind in ("layout", "free") and op.inputs:
            r = op.inputs[0]
            if len(r.shape) == 5:            # (batch, kv_heads, 1 -> group, tokens, dim) of repeat_kv
                return r.shape[1]
            continue
        out = op.outputs[0] if op.outputs else None
        return out.shape[1] if out is not None and len(out.shape) == 4 else None
    return None


@dataclass
class Lowered:
    kernels: list[Kernel]
    folded: list[Kernel]          # layout-only regions (zero cost), kept for transparency
    num_ops: int
    unpriced_ops: list[str]


def _program_order(capture: Capture) -> list[CapturedOp]:
    """The capture's ops, indexed from 0 (a slice of a longer capture is re-indexed on copies)."""
    ops = capture.ops
    if any(o.index != i for i, o in enumerate(ops)):     # a slice of a longer capture
        ops = [copy.copy(o) for o in ops]
        for i, o in enumerate(ops):
            o.index = i
    return ops


def _data_flow(ops: list[CapturedOp]) -> tuple[dict[int, list[int]], dict[int, int]]:
    """(storage root -> the ops reading it, storage root -> the first op other than a view writing it)."""
    consumers: dict[int, list[int]] = {}
    producer: dict[int, int] = {}
    for op in ops:
        for r in op.inputs:
            consumers.setdefault(r.root, []).append(op.index)
        if op.kind != "free":
            for r in op.outputs:
                producer.setdefault(r.root, op.index)
    return consumers, producer


class _Emitter:
    """Kernels in program order. Vector and layout ops gather in an open region that becomes one
    kernel (or, with ``fuse`` off, one per op) when a compute kernel or the end closes it; a region
    of layout copies only folds away."""

    def __init__(self, consumers: dict[int, list[int]], producer: dict[int, int], act_bytes: float, fuse: bool):
        self.consumers, self.producer, self.act_bytes, self.fuse = consumers, producer, act_bytes, fuse
        self.kernels: list[Kernel] = []
        self.folded: list[Kernel] = []
        self.unpriced: list[str] = []
        self.region: list[CapturedOp] = []
        self.moe_seen: set[str] = set()      # expert modules whose routed rows are sorted already
        self.moe_scope: str | None = None    # an expert module whose combine (finalize) is open

    def _region(self, ops: list[CapturedOp], kind: str = "vector") -> Kernel:
        return _region_kernel(ops, self.consumers, self.producer, self.act_bytes, kind)

    def flush(self) -> None:
        region, self.region = self.region, []
        if not region:
            return
        if all(o.kind == "layout" for o in region):
            self.folded.append(self._region(region, "layout"))
        elif self.fuse:
            self.kernels.append(self._region(region))
        else:
            for o in region:
                if o.kind == "layout":
                    self.folded.append(self._region([o], "layout"))
                else:
                    self.kernels.append(self._region([o]))

    def kernel(self, k: Kernel, unpriced: str | None = None) -> None:
        """Close the open region, then emit ``k`` (an unpriced one listed by its aten op)."""
        self.flush()
        self.kernels.append(k)
        if unpriced is not None:
            self.unpriced.append(unpriced)


def _routed_expert_gemm(op: CapturedOp, k: Kernel, em: _Emitter) -> None:
    """A grouped expert GEMM, with what MoE runtimes run around it (as the config path,
    ``perf.graph.routed_expert_ops``): before an expert module's first GEMM the (token, expert)
    rows are sorted by expert (``moe_sort``: a radix sort of 32-bit keys and row ids, one
    8-bit pass per 256 experts); after its last, the combine of each token's expert outputs
    is its own kernel, not fused with what follows the module."""
    scope = op.module or ""
    if scope not in em.moe_seen:
        em.moe_seen.add(scope)
        em.flush()
        nbytes = moe_sort_bytes(k.params.get("rows") or k.params["m"] * k.params["groups"], k.params["groups"])
        em.kernels.append(Kernel("moe_sort", "vector", [], {"flops": 0.0, "hbm_bytes": nbytes,
                                                            "read_bytes": nbytes / 2, "write_bytes": nbytes / 2}, []))
        em.kernel(k)
        return
    em.kernel(k)
    em.moe_scope = scope


def _lower_op(op: CapturedOp, em: _Emitter, gemms: dict[int, Kernel], eager_starts: dict[int, Kernel],
              eager_covered: set[int]) -> None:
    """Route one op: into an eager attention span, the open vector region, its (fused) GEMM
    kernel, an attention kernel or an unpriced kernel."""
    if op.index in eager_covered:
        if op.index in eager_starts:
            em.kernel(eager_starts[op.index])
        return
    if op.kind == "free":
        return
    if op.kind in ("vector", "layout"):
        if em.moe_scope is not None and not (op.module or "").startswith(em.moe_scope):
            em.flush()                   # the experts' combine (finalize) is a kernel of its own
            em.moe_scope = None
        if op.target.startswith("aten.embedding."):
            em.flush()                   # a token-embedding lookup is its own kernel
            em.region.append(op)
            em.flush()
        else:
            em.region.append(op)
        return
    if op.kind == "gemm":
        k = gemms.get(op.index)
        if k is not None:        # None: absorbed into an earlier GEMM, does not split the region
            if k.params.get("grouped"):
                _routed_expert_gemm(op, k, em)
            else:
                em.kernel(k, op.target if k.kind == "unpriced" else None)
        return
    if op.kind == "attention":
        em.kernel(Kernel("attention_" + op.attrs.get("phase", "?"), "attention", [op.index], dict(op.attrs),
                         [op.target]))
    else:
        em.kernel(Kernel(op.target, "unpriced", [op.index], {"module": op.module}, [op.target]), op.target)


def lower(capture: Capture, *, act_bytes: float = 2.0, fuse: bool = True) -> Lowered:
    """Captured ops -> kernels in program order."""
    ops = _program_order(capture)
    consumers, producer = _data_flow(ops)
    gemms = _gemm_kernels(ops, fuse)
    eager_starts, eager_covered = _eager_attention(ops, producer)
    em = _Emitter(consumers, producer, act_bytes, fuse)
    for op in ops:
        _lower_op(op, em, gemms, eager_starts, eager_covered)
    em.flush()
    return Lowered(kernels=em.kernels, folded=em.folded, num_ops=len(ops), unpriced_ops=em.unpriced)
