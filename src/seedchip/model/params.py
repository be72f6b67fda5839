"""Exact parameter counts of a :class:`ModelArch`, total and active per token.

Everything is counted: weight matrices, biases, RMSNorm weight vectors (two per layer plus
the final norm; QK-norm adds 2 x head_dim per layer; MLA adds q_a_layernorm and
kv_a_layernorm), attention sinks (one scalar per head per layer), router weights and biases.
Tied embeddings are counted once. Multi-token-prediction modules (``num_mtp_layers``) are not
part of the main model and are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .arch import ModelArch


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts by component; ``total`` and ``active`` are derived."""

    embedding: int
    lm_head: int  # 0 when tied to the embedding
    attention: int  # projections, their biases and attention sinks, all layers
    dense_mlp: int  # feed-forward of dense layers
    experts: int  # all routed experts of all MoE layers
    shared_experts: int
    router: int
    norms: int
    active_experts: int  # routed-expert parameters one token uses (top-k per MoE layer)
    per_expert: int = 0  # one routed expert of one layer

    @property
    def total(self) -> int:
        return (self.embedding + self.lm_head + self.attention + self.dense_mlp + self.experts
                + self.shared_experts + self.router + self.norms)

    @property
    def active(self) -> int:
        """Parameters one token touches: everything but the routed experts it is not sent to."""
        return self.total - self.experts + self.active_experts

    @property
    def active_without_embedding(self) -> int:
        """``active`` less the input embedding table (a lookup, not a matmul); the lm_head
        stays. This is the convention of the gpt-oss model card's active counts."""
        return self.active - self.embedding

    @property
    def breakdown(self) -> dict[str, int]:
        d = asdict(self)
        d.pop("active_experts")
        d.pop("per_expert")
        return d

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total, "active": self.active}


def _mlp(hidden: int, width: int, gated: bool, bias: bool) -> int:
    """A feed-forward block: gated = gate, up and down projections (SwiGLU); else up and down."""
    if width == 0:
        return 0
    if gated:
        return 3 * hidden * width + ((2 * width + hidden) if bias else 0)
    return 2 * hidden * width + ((width + hidden) if bias else 0)


def attention_params_per_layer(a: ModelArch) -> int:
    h = a.hidden_size
    if a.attention == "mla":
        nope, rope, kvr = int(a.qk_nope_head_dim), int(a.qk_rope_head_dim), int(a.kv_lora_rank)
        qk = nope + rope
        if a.q_lora_rank:
            qr = a.q_lora_rank
            q = h * qr + qr * a.num_heads * qk  # q_a_proj, q_b_proj
            q_bias = qr if a.qkv_bias else 0  # q_a_proj bias
        else:
            q = h * a.num_heads * qk  # q_proj (no bias in DeepSeek)
            q_bias = 0
        kv = h * (kvr + rope) + kvr * a.num_heads * (nope + a.v_head_dim)  # kv_a_proj_with_mqa, kv_b_proj
        kv_bias = (kvr + rope) if a.qkv_bias else 0
        o = a.num_heads * a.v_head_dim * h
        n = q + q_bias + kv + kv_bias + o
    else:
        q_out = a.num_heads * a.head_dim
        kv_out = a.num_kv_heads * (a.head_dim + a.v_head_dim)
        n = h * q_out + h * kv_out + a.num_heads * a.v_head_dim * h
        if a.qkv_bias:
            n += q_out + kv_out
    if a.o_bias:
        n += h
    if a.attention_sinks:
        n += a.num_heads
    return n


def norm_params_per_layer(a: ModelArch) -> int:
    n = 2 * a.hidden_size  # input_layernorm, post_attention_layernorm
    if a.qk_norm:
        n += 2 * a.head_dim  # q_norm, k_norm (one weight of head_dim shared by the heads)
    if a.attention == "mla":
        n += int(a.kv_lora_rank) + (a.q_lora_rank or 0)  # kv_a_layernorm, q_a_layernorm
    return n


def count_params(a: ModelArch) -> ParamCounts:
    h, L = a.hidden_size, a.num_layers
    moe_layers, dense_layers = a.num_moe_layers, a.num_dense_layers
    embedding = a.vocab_size * h
    lm_head = 0 if a.tie_word_embeddings else a.vocab_size * h
    per_expert = _mlp(h, a.moe_intermediate_size, a.mlp_gated, a.expert_bias) if moe_layers else 0
    router = (h * a.num_experts + (a.num_experts if a.router_bias else 0)) if moe_layers else 0
    shared = _mlp(h, a.shared_expert_intermediate_size, a.mlp_gated, a.mlp_bias) if moe_layers else 0
    return ParamCounts(
        embedding=embedding,
        lm_head=lm_head,
        attention=L * attention_params_per_layer(a),
        dense_mlp=dense_layers * _mlp(h, a.intermediate_size, a.mlp_gated, a.mlp_bias),
        experts=moe_layers * a.num_experts * per_expert,
        shared_experts=moe_layers * shared,
        router=moe_layers * router,
        norms=L * norm_params_per_layer(a) + h,  # + the final norm
        active_experts=moe_layers * a.num_experts_per_tok * per_expert,
        per_expert=per_expert,
    )
