"""Memory plan: weights, KV bytes per token, activations and reserve -> KV tokens that fit.

All figures are per chip (the most loaded pipeline stage); ``max_kv_tokens`` is per
data-parallel replica, ``max_kv_tokens_total`` for the whole deployment.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import DoesNotFitError
from ..formats import get_format
from ..model.arch import ModelArch
from ..model.params import count_params
from ..units import fmt
from .deployment import Deployment

RUNTIME_RESERVE_BYTES = 2**30   # ESTIMATE: runtime, CUDA-graph / compiler buffers, fragmentation (~1 GiB)
MAX_LOGIT_ROWS = 256            # sequences whose logits a step may hold at once (vLLM max_num_seqs default)
EMBEDDING_FORMAT = "bf16"       # embeddings, LM head, router and norms stay in bf16 when weights are quantized


@dataclass(frozen=True)
class MemoryPlan:
    capacity_bytes: float          # HBM of one chip
    usable_bytes: float            # x memory_fraction
    weights_bytes: float
    activation_bytes: float
    reserve_bytes: float
    free_bytes: float              # what is left for the KV cache (may be negative)
    kv_bytes_per_token: float      # one token of one sequence, all layers of this chip's stage
    max_kv_tokens: int             # per replica
    max_kv_tokens_total: int       # whole deployment (x dp)
    weights_bytes_total: float     # the whole model, all chips

    def to_dict(self) -> dict:
        return asdict(self)


def stage_layers(model: ModelArch, pp: int) -> int:
    """Layers of the largest pipeline stage."""
    return math.ceil(model.num_layers / pp)


def kv_bytes_per_token(model: ModelArch, dep: Deployment) -> float:
    """KV-cache bytes one token adds on one chip (all layers of its stage). GQA heads
    are split over tp (replicated when tp > KV heads); MLA's latent is replicated on
    every tensor-parallel chip."""
    kvb = get_format(dep.kv_format).bytes_per_element
    if model.attention == "mla":
        per_layer = model.kv_latent_dim
    else:
        kv_chip = max(1, model.num_kv_heads // dep.tp)
        per_layer = kv_chip * (model.head_dim + model.v_head_dim)
    return stage_layers(model, dep.pp) * per_layer * kvb


def kv_bytes_per_token_total(model: ModelArch, kv_format: str) -> float:
    """KV-cache bytes of one token over all layers and heads (what a prefill pool sends
    to a decode pool)."""
    return model.num_layers * model.kv_elements_per_token_per_layer() * get_format(kv_format).bytes_per_element


def weights_bytes(model: ModelArch, dep: Deployment) -> tuple[float, float]:
    """(bytes on the most loaded chip, bytes of the whole model)."""
    p = count_params(model)
    wb = get_format(dep.weight_format).bytes_per_element
    eb = get_format(EMBEDDING_FORMAT).bytes_per_element
    tp, pp = dep.tp, dep.pp
    layer_frac = stage_layers(model, pp) / model.num_layers
    per_chip_layers = ((p.attention + p.dense_mlp + p.shared_experts) * wb / tp
                       + p.experts * wb / (dep.ep * dep.moe_tp)
                       + (p.router + p.norms) * eb) * layer_frac
    emb = p.embedding * eb / tp
    head = (p.lm_head if p.lm_head else (p.embedding if pp > 1 else 0)) * eb / tp
    ends = emb + head if pp == 1 else max(emb, head)
    total = (p.attention + p.dense_mlp + p.shared_experts + p.experts) * wb + (
        p.router + p.norms + p.embedding + p.lm_head) * eb
    return per_chip_layers + ends, total


def activation_bytes(model: ModelArch, dep: Deployment, tokens: int) -> float:
    """Peak activation memory of a step of ``tokens`` tokens on one chip (bf16 working
    buffers of the widest layer plus fp32 logits)."""
    h = model.hidden_size
    tp = dep.tp
    if model.is_moe:
        k = model.num_experts_per_tok
        ffn = 2 * model.moe_intermediate_size // dep.moe_tp * max(1, k // max(1, dep.ep))
    else:
        ffn = 0
    if model.intermediate_size:
        ffn = max(ffn, 2 * model.intermediate_size // tp)
    qkv = (model.num_heads // tp) * (model.head_dim + model.v_head_dim) * 2
    per_token = (4 * h + ffn + qkv) * 2.0
    logits = min(tokens, MAX_LOGIT_ROWS) * math.ceil(model.vocab_size / tp) * 4.0
    return tokens * per_token + logits


def memory_plan(model: ModelArch, dep: Deployment, tokens_per_step: int | None = None) -> MemoryPlan:
    """What fits on one chip. ``memory_basis`` "total": ``memory_fraction`` of the HBM
    holds everything (weights, activations, reserve, KV); "free": everything but the KV
    cache is placed first and that fraction of what is left becomes KV cache; "static":
    that fraction of the memory free at start (the HBM less the runtime's reserve) holds
    the weights and the KV cache, and the activations live in the rest."""
    chip = dep.chip
    cap = chip.hbm_capacity_bytes
    w, total = weights_bytes(model, dep)
    act = activation_bytes(model, dep, tokens_per_step or dep.max_batched_tokens)
    if dep.memory_basis == "free":
        left = cap - w - act - RUNTIME_RESERVE_BYTES
        usable = w + act + RUNTIME_RESERVE_BYTES + max(left, 0.0) * dep.memory_fraction if left > 0 else cap
    elif dep.memory_basis == "static":     # the activations and the reserve sit outside the fraction
        usable = min(cap, (cap - RUNTIME_RESERVE_BYTES) * dep.memory_fraction + act + RUNTIME_RESERVE_BYTES)
    else:
        usable = cap * dep.memory_fraction
    free = usable - w - act - RUNTIME_RESERVE_BYTES
    kvt = kv_bytes_per_token(model, dep)
    max_tokens = int(free // kvt) if free > 0 else 0
    return MemoryPlan(capacity_bytes=cap, usable_bytes=usable, weights_bytes=w, activation_bytes=act,
                      reserve_bytes=RUNTIME_RESERVE_BYTES, free_bytes=free, kv_bytes_per_token=kvt,
                      max_kv_tokens=max_tokens, max_kv_tokens_total=max_tokens * dep.dp, weights_bytes_total=total)


def check_fits(model: ModelArch, dep: Deployment, plan: MemoryPlan, kv_tokens_needed: int = 0) -> None:
    """Raise DoesNotFitError (with what would make it fit) when weights, activations
    and the KV cache of ``kv_tokens_needed`` tokens per replica exceed usable memory."""
    need = plan.weights_bytes + plan.activation_bytes + plan.reserve_bytes + kv_tokens_needed * plan.kv_bytes_per_token
    if need <= plan.usable_bytes:
        return
    where = f"{dep.num_chips} x {dep.chip.id} (tp {dep.tp}, pp {dep.pp}, ep {dep.ep})"
    parts = (f"weights {fmt(plan.weights_bytes, 'bytes')} + activations {fmt(plan.activation_bytes, 'bytes')} "
             f"+ reserve {fmt(plan.reserve_bytes, 'bytes')}")
    if kv_tokens_needed:
        parts += f" + KV {fmt(kv_tokens_needed * plan.kv_bytes_per_token, 'bytes')} ({kv_tokens_needed} tokens)"
    hints = []
    if plan.weights_bytes + plan.activation_bytes + plan.reserve_bytes > plan.usable_bytes:
        room = max(plan.usable_bytes - plan.activation_bytes - plan.reserve_bytes, 1.0)

        def chips_for(weight_bytes_per_chip: float) -> int:
            scale = weight_bytes_per_chip * dep.num_chips / room
            return 1 << max(0, math.ceil(math.log2(max(scale, 1.0))))

        def plan_text(chips: int) -> str:
            up = dep.chip.node.scale_up_size
            tp = min(chips, up)
            return f"--num-chips {chips} --tp {tp}" + (f" --pp {chips // tp}" if chips > tp else "")

        chips = chips_for(plan.weights_bytes)
        hints.append(f"use at least {chips} chips ({plan_text(chips)})")
        bits = get_format(dep.weight_format).bits
        if bits > 8:
            c8 = chips_for(plan.weights_bytes * 8 / bits)
            hints.append(f"or --weight-format fp8 on {c8} chip{'s' if c8 > 1 else ''} ({plan_text(c8)})")
    else:
        fit_tokens = max(0, plan.max_kv_tokens)
        hints.append(f"reduce the batch or lengths (KV room for {fit_tokens} tokens per replica)")
        if get_format(dep.kv_format).bits > 8:
            hints.append("or --kv-format fp8")
        hints.append("or add chips")
    share = {"total": f"{dep.memory_fraction:.0%} of {fmt(plan.capacity_bytes, 'bytes')}",
             "free": f"{fmt(plan.capacity_bytes, 'bytes')}, the KV cache {dep.memory_fraction:.0%} of what weights "
                     "leave",
             "static": f"{fmt(plan.capacity_bytes, 'bytes')}, weights and KV cache {dep.memory_fraction:.1%} of "
                       f"{fmt(plan.capacity_bytes - plan.reserve_bytes, 'bytes')}"}[dep.memory_basis]
    raise DoesNotFitError(
        f"{model.id} does not fit on {where}: needs {fmt(need, 'bytes')} per chip ({parts}) but "
        f"{fmt(plan.usable_bytes, 'bytes')} are usable ({share}); "
        + " ".join(hints), needed_bytes=need, available_bytes=plan.usable_bytes)
