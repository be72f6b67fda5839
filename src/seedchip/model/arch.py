"""ModelArch: one normalized description of a decoder-only LLM, whatever its
Hugging Face ``config.json`` spelled. Hugging Face field names are translated once,
in :mod:`seedchip.model.hf`; everything downstream reads only these fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..spec_base import FrozenSpec


class ModelArch(FrozenSpec):
    id: str = Field(description="zoo id (llama-3.1-70b) or the config's name for a user file")
    name: str = Field(description="human name, e.g. 'Llama-3.1-70B'")
    architecture: str = Field(description="Hugging Face architectures[0], e.g. LlamaForCausalLM")
    family: str = Field(description="llama, mistral, mixtral, qwen2, qwen3, qwen3_moe, deepseek_v3, gpt_oss, seed_oss, ...")
    source: str = Field("", description="where the config came from")

    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    max_position_embeddings: int = Field(0, ge=0)

    # Attention. For MHA/GQA: q, k, v heads of head_dim (v_head_dim == head_dim).
    attention: Literal["mha", "gqa", "mla"]
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0, description="for MLA equal to num_heads (decompressed form)")
    head_dim: int = Field(gt=0, description="q/k head dim; for MLA qk_nope_head_dim + qk_rope_head_dim")
    v_head_dim: int = Field(gt=0)
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    attention_sinks: bool = False
    # MLA (DeepSeek-V2/V3): low-rank q and a compressed latent KV shared by all heads.
    q_lora_rank: int | None = Field(None, gt=0, description="None: q is a full projection")
    kv_lora_rank: int | None = Field(None, gt=0)
    qk_nope_head_dim: int | None = Field(None, gt=0)
    qk_rope_head_dim: int | None = Field(None, gt=0)

    # Per layer: None = full attention, an int = sliding window of that many tokens.
    layer_windows: tuple[int | None, ...]
    # Per layer: True = MoE feed-forward, False = dense feed-forward.
    layer_is_moe: tuple[bool, ...]

    # Dense feed-forward.
    intermediate_size: int = Field(0, ge=0)
    mlp_gated: bool = Field(True, description="SwiGLU-style: gate, up and down projections")
    mlp_bias: bool = False
    # MoE feed-forward.
    num_experts: int = Field(0, ge=0)
    num_experts_per_tok: int = Field(0, ge=0)
    moe_intermediate_size: int = Field(0, ge=0)
    shared_expert_intermediate_size: int = Field(0, ge=0, description="0 = no shared expert; else its total width")
    router_bias: bool = False
    expert_bias: bool = Field(False, description="routed experts carry biases (gpt-oss: gate_up and down)")
    # Multi-token-prediction modules shipped with some checkpoints (DeepSeek-V3: 1, ~14B);
    # recorded for reference, never counted in the main model's parameters.
    num_mtp_layers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> "ModelArch":
        n = self.num_layers
        if len(self.layer_windows) != n or len(self.layer_is_moe) != n:
            raise ValueError(f"layer_windows and layer_is_moe need {n} entries (one per layer)")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if any(self.layer_is_moe):
            if not (self.num_experts and self.num_experts_per_tok and self.moe_intermediate_size):
                raise ValueError("MoE layers need num_experts, num_experts_per_tok and moe_intermediate_size")
            if self.num_experts_per_tok > self.num_experts:
                raise ValueError(f"num_experts_per_tok {self.num_experts_per_tok} > num_experts {self.num_experts}")
        if not all(self.layer_is_moe) and self.intermediate_size <= 0:
            raise ValueError("dense layers need intermediate_size > 0")
        if self.attention == "mla" and not (self.kv_lora_rank and self.qk_rope_head_dim and self.qk_nope_head_dim):
            raise ValueError("MLA needs kv_lora_rank, qk_nope_head_dim and qk_rope_head_dim")
        return self

    @property
    def is_moe(self) -> bool:
        return any(self.layer_is_moe)

    @property
    def num_moe_layers(self) -> int:
        return sum(self.layer_is_moe)

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_latent_dim(self) -> int:
        """Elements cached per token per layer for MLA (latent + rope key); 0 otherwise."""
        if self.attention != "mla":
            return 0
        return int(self.kv_lora_rank) + int(self.qk_rope_head_dim)

    def kv_elements_per_token_per_layer(self) -> int:
        """Elements of KV cache one token adds in one layer (all heads, no sharding)."""
        if self.attention == "mla":
            return self.kv_latent_dim
        return self.num_kv_heads * (self.head_dim + self.v_head_dim)
