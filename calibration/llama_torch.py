"""A Llama-architecture decoder in plain PyTorch with random bf16 weights, for timing
one decoder layer and one whole model step (no transformers, no download).

Used by gpu_microbench.py (needs only PyTorch and NumPy). The layer is what a serving
engine runs, unfused: RMSNorm, fused QKV projection, rotary embedding, KV-cache write,
attention (causal SDPA for prefill; decode as one query block per KV head, the query
heads of a group as its rows), output projection, residual, RMSNorm, fused gate/up
projection, SiLU x up, down projection, residual. A whole step adds the embedding
gather, the final norm and the LM head on each sequence's last token, and a greedy
sample (argmax). Rotary uses the plain inverse-frequency table (Llama-3's frequency
rescaling changes the values, not the cost).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

BF16 = torch.bfloat16
_BACKENDS: list | None = None


def sdpa(q, k, v, causal: bool, gqa: bool, device: torch.device):
    """scaled_dot_product_attention; on CUDA the math fallback is forbidden (it would
    materialise the whole score matrix and time something no engine runs)."""
    global _BACKENDS
    kw = {"enable_gqa": True} if gqa else {}
    if device.type != "cuda":
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **kw)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    if _BACKENDS is None:
        _BACKENDS = [getattr(SDPBackend, x) for x in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION")
                     if hasattr(SDPBackend, x)]
    with sdpa_kernel(_BACKENDS):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **kw)


def tiny_config(cfg: dict) -> dict:
    """A tiny model of the same architecture (for CPU smoke runs)."""
    c = copy.deepcopy(cfg)
    c.update(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, intermediate_size=256,
             num_hidden_layers=2, vocab_size=512, max_position_embeddings=4096, tie_word_embeddings=False)
    c.pop("head_dim", None)
    c.pop("rope_scaling", None)
    return c


def _rms(x, w, eps):
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), w, eps)
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def _rope(x, cos, sin):
    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rot * sin


class TorchLlama:
    def __init__(self, cfg: dict, device: torch.device, gen: torch.Generator, gqa: bool = True):
        self.device, self.gen, self.gqa = device, gen, gqa
        self.hidden = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.kv_heads = int(cfg.get("num_key_value_heads") or self.heads)
        self.head_dim = int(cfg.get("head_dim") or self.hidden // self.heads)
        self.inter = int(cfg["intermediate_size"])
        self.vocab = int(cfg["vocab_size"])
        self.num_layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("rms_norm_eps", 1e-5))
        self.theta = float(cfg.get("rope_theta", 10000.0))
        h, d = self.hidden, self.head_dim
        qkv = (self.heads + 2 * self.kv_heads) * d

        def w(*shape, std=0.02):
            return torch.randn(*shape, generator=gen, device=device, dtype=BF16).mul_(std)

        def norm():
            return w(h, std=0.1).add_(1.0)

        self.layers = [dict(in_norm=norm(), wqkv=w(qkv, h), wo=w(h, self.heads * d), post_norm=norm(),
                            wgu=w(2 * self.inter, h), wd=w(h, self.inter)) for _ in range(self.num_layers)]
        self.embed = w(self.vocab, h)
        self.final_norm = norm()
        self.lm_head = self.embed if cfg.get("tie_word_embeddings") else w(self.vocab, h)

    # sizes, for the memory guard and the CSV's approximate flops / bytes columns
    def layer_params(self) -> int:
        h, d = self.hidden, self.head_dim
        return (self.heads + 2 * self.kv_heads) * d * h + h * self.heads * d + 3 * self.inter * h + 2 * h

    def weight_bytes(self) -> float:
        head = self.vocab * self.hidden * (1 if self.lm_head is self.embed else 2)
        return 2.0 * (self.num_layers * self.layer_params() + head + self.hidden)

    def kv_bytes(self, layers: int, batch: int, length: int) -> float:
        return 2.0 * 2 * layers * batch * self.kv_heads * length * self.head_dim

    def activation_bytes(self, tokens: int) -> float:
        per_token = (self.heads + 2 * self.kv_heads) * self.head_dim + 3 * self.inter + 6 * self.hidden
        return 4.0 * 2 * tokens * per_token + 2.0 * 4 * self.vocab * 8

    def step_counts(self, batch: int, ctx: int, new: int, layers: int, head: bool) -> tuple[float, float]:
        """Approximate FLOP and HBM bytes: matmul weights, attention pairs, KV read and write."""
        t = batch * new
        pairs = batch * (new * ctx + new * (new + 1) / 2.0)
        flops = layers * (2.0 * t * self.layer_params() + 4.0 * pairs * self.heads * self.head_dim)
        nbytes = layers * (2.0 * self.layer_params() + self.kv_bytes(1, batch, ctx + new))
        if head:
            flops += 2.0 * batch * self.hidden * self.vocab
            nbytes += 2.0 * self.vocab * self.hidden
        return flops, nbytes

    def _layer(self, i, x, kv, B, ctx, new, cos, sin):
        w = self.layers[i]
        H, KVH, D = self.heads, self.kv_heads, self.head_dim
        r = x
        y = _rms(x, w["in_norm"], self.eps)
        qkv = F.linear(y, w["wqkv"]).view(B, new, H + 2 * KVH, D)
        qk = _rope(qkv[:, :, :H + KVH], cos, sin)            # q and k rotated together
        q, k, v = qk[:, :, :H], qk[:, :, H:], qkv[:, :, H + KVH:]
        kv[0, :, :, ctx:ctx + new] = k.transpose(1, 2)
        kv[1, :, :, ctx:ctx + new] = v.transpose(1, 2)
        K, V = kv[0], kv[1]                                   # (B, KVH, ctx + new, D)
        if new == 1:   # decode: the G query heads of each KV head are the rows of one query block
            o = sdpa(q.reshape(B, KVH, H // KVH, D), K, V, False, False, self.device).reshape(B, H * D)
        else:          # prefill from scratch (ctx == 0): causal
            qh = q.transpose(1, 2)
            if KVH != H and not self.gqa:
                K, V = K.repeat_interleave(H // KVH, 1), V.repeat_interleave(H // KVH, 1)
            o = sdpa(qh, K, V, True, KVH != H and self.gqa, self.device)
            o = o.transpose(1, 2).reshape(B * new, H * D)
        x = r + F.linear(o, w["wo"])
        r = x
        y = _rms(x, w["post_norm"], self.eps)
        gu = F.linear(y, w["wgu"])
        y = F.silu(gu[:, :self.inter]) * gu[:, self.inter:]
        return r + F.linear(y, w["wd"])

    def step_fn(self, batch: int, ctx: int, new: int, layers: int, head: bool):
        """A closure running one step: ``batch`` sequences each computing ``new`` tokens
        after ``ctx`` cached ones (prefill rows use ctx = 0), over the first ``layers``
        layers; ``head``: with the embedding, final norm, LM head and sampling. Returns
        (fn, KV cache), the cache preallocated and filled with random values."""
        if new > 1 and ctx:
            raise ValueError("chunked prefill after cached context is not built here (use ctx = 0)")
        d = self.head_dim
        cache = torch.empty(layers, 2, batch, self.kv_heads, ctx + new, d, device=self.device, dtype=BF16)
        cache.normal_(generator=self.gen)
        pos = torch.arange(ctx, ctx + new, device=self.device, dtype=torch.float32)
        inv = 1.0 / (self.theta ** (torch.arange(0, d, 2, device=self.device, dtype=torch.float32) / d))
        ang = torch.outer(pos, inv)
        ang = torch.cat((ang, ang), dim=-1)
        cos = ang.cos().to(BF16).view(1, new, 1, d)
        sin = ang.sin().to(BF16).view(1, new, 1, d)
        tokens = torch.randint(0, self.vocab, (batch, new), generator=self.gen, device=self.device)
        x0 = torch.randn(batch * new, self.hidden, generator=self.gen, device=self.device, dtype=BF16)

        def fn():
            x = F.embedding(tokens, self.embed).reshape(batch * new, self.hidden) if head else x0
            for i in range(layers):
                x = self._layer(i, x, cache[i], batch, ctx, new, cos, sin)
            if not head:
                return x
            last = x.reshape(batch, new, self.hidden)[:, -1]
            logits = F.linear(_rms(last, self.final_norm, self.eps), self.lm_head)
            return torch.argmax(logits, dim=-1)

        return fn, cache
