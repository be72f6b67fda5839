"""``emulate``: build a model, generate on the virtual chip, price every step, and
compare numerics and timing (what ``seedchip emulate`` prints).

1. The model: a zoo id or a Hugging Face model directory; random weights from its
   ``config.json`` (seeded) unless the directory holds weights; ``layers`` keeps only
   the first N decoder layers.
2. Generation: one prefill of the prompt (tokenized when the directory has a
   tokenizer, else ``prompt_len`` random token ids) and greedy decode steps, each
   captured and priced on the chip in the policy's formats (fake-quantized).
3. Numerics: the full sequence (prompt + generated tokens) run once in full precision
   and once in the chip's formats: top-1 agreement and KL of the next-token
   distributions at every position; perplexity of both on a text file if given.
4. The config path: ``step_cost`` of the same ModelArch on the same deployment, for
   the prefill and for the first decode step, side by side with the capture.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import SeedChipError, SpecError
from ..outputs import read_text
from ..perf.deployment import make_deployment
from ..perf.step import decode_step, prefill_step, step_cost
from . import hf_models
from .capture import Capture, Recorder
from .lower import lower
from .numerics import Policy, Quantizer, divergence, layer_deltas, negative_log_likelihood, perplexity_from
from .price import Profile, merge_profiles, price


@dataclass
class EmulateResult:
    model: str
    architecture: str
    num_layers: int
    chip: str
    calibration: str
    policy: dict
    prompt_len: int
    num_new_tokens: int
    prefill: Profile
    decode_steps: list[Profile]
    numerics: dict
    config_path: dict | None
    generated_ids: list[int]
    text: str | None = None
    random_weights: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def decode_time_s_per_token(self) -> float:
        return sum(p.time_s for p in self.decode_steps) / max(1, len(self.decode_steps))

    def to_dict(self, top: int = 10) -> dict:
        everything = merge_profiles([self.prefill] + self.decode_steps)
        unpriced = sorted(set(everything.unpriced_ops))
        counts = {u: everything.unpriced_ops.count(u) for u in unpriced}
        return {
            "model": self.model, "architecture": self.architecture, "num_layers": self.num_layers,
            "random_weights": self.random_weights, "chip": self.chip, "calibration": self.calibration,
            "formats": self.policy, "priced_formats": dict(self.prefill.formats), "prompt_len": self.prompt_len, "num_new_tokens": self.num_new_tokens,
            "num_ops_captured": everything.num_ops_captured,
            "unpriced_ops": unpriced, "unpriced_op_counts": counts,
            "prefill_time_s": self.prefill.time_s, "prefill_energy_j": self.prefill.energy_j,
            "decode_time_s_per_token": self.decode_time_s_per_token,
            "decode_energy_j_per_token": sum(p.energy_j for p in self.decode_steps) / max(1, len(self.decode_steps)),
            "decode_step_times_s": [p.time_s for p in self.decode_steps],
            "top_ops": [{"name": r["name"], "kind": r["kind"], "count": r["count"], "time_s": r["time_s"],
                         "bound": r["bound"]} for r in everything.top(top)],
            "prefill": self.prefill.to_dict(top), "decode_first_step": self.decode_steps[0].to_dict(top),
            "numerics": self.numerics, "config_path": self.config_path,
            "generated_ids": self.generated_ids, "text": self.text, "notes": list(self.notes),
        }


def _price(cap: Capture, dep, pf, fuse: bool) -> Profile:
    return price(lower(cap, fuse=fuse), dep, pf)


def _prompt_ids(src, tok, prompt: str | None, prompt_len: int, vocab: int, seed: int) -> torch.Tensor:
    if prompt is not None:
        if tok is None:
            raise SpecError(f"--prompt needs a tokenizer; {src.model_id!r} has none in its directory "
                            "(use --prompt-len N to run on random token ids)")
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        if ids.numel() == 0:
            raise SpecError("the prompt tokenized to no tokens")
        return ids
    if prompt_len <= 0:
        raise SpecError(f"prompt_len = {prompt_len!r} must be a positive integer")
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (1, prompt_len), generator=g)


def _logits(out) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out[0]


MAX_NEW_TOKENS = 4096      # a real model on the host CPU: thousands of tokens already take minutes
MAX_PROMPT = 1 << 17


def _check_before_building(src, tok, dtype: str, prompt: str | None, text_file) -> None:
    """Refuse what would fail only after the model is built and run (tens of seconds)."""
    if dtype not in ("float32", "bfloat16", "float16"):
        raise SpecError(f"--dtype {dtype!r}: use float32, bfloat16 or float16")
    if prompt is not None and tok is None:
        raise SpecError(f"--prompt needs a tokenizer; {src.model_id!r} has none in its directory "
                        "(use --prompt-len N to run on random token ids)")
    if text_file is not None:
        read_text(text_file, "--text")                    # exists, is a text file
        if tok is None:
            raise SpecError(f"--text (perplexity) needs a tokenizer; {src.model_id!r} has none in its directory")


def emulate(model: str, *, chip: str = "seedchip-ref", formats=None, layers: int | None = None,
            prompt_len: int = 128, max_new_tokens: int = 16, prompt: str | None = None,
            text_file: str | Path | None = None, calibration: str | None = None, seed: int = 0,
            dtype: str = "float32", fuse: bool = True, compare_config: bool = True,
            max_ppl_tokens: int = 1024) -> EmulateResult:
    """Run ``model`` on ``chip`` in ``formats`` (see the module doc)."""
    for name, v, lo, hi in (("--max-new-tokens", max_new_tokens, 1, MAX_NEW_TOKENS),
                            ("--prompt-len", prompt_len, 1, MAX_PROMPT),
                            ("--layers", 1 if layers is None else layers, 1, 1 << 16),
                            ("--seed", seed, 0, 2**63 - 1)):          # torch seeds are 64-bit
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise SpecError(f"{name} {v!r} must be a whole number in {lo}..{hi:,} (the model runs on this CPU, "
                            "token by token)")
    policy = Policy.from_formats(formats)
    pf = policy.pricing()
    dep = make_deployment(chip, weight_format=pf.weights, act_format=pf.activations, kv_format=pf.kv,
                          calibration=calibration)
    src = hf_models.resolve(model, layers)
    tok = hf_models.tokenizer_for(src)
    _check_before_building(src, tok, dtype, prompt, text_file)
    notes: list[str] = []
    try:
        arch = hf_models.arch_of(src)
    except SeedChipError as e:
        arch = None
        notes.append(f"no config-path comparison: {e}")
    net = hf_models.build(src, dtype=dtype, seed=seed)
    vocab = int(getattr(net.config, "vocab_size", 0) or (arch.vocab_size if arch else 32000))
    ids = _prompt_ids(src, tok, prompt, prompt_len, vocab, seed)
    quant = None if policy.is_identity else Quantizer(policy)

    with warnings.catch_warnings():
        # transformers 5 renames past_key_values; both spellings work
        warnings.simplefilter("ignore", FutureWarning)
        return _run(src, arch, net, tok, ids, quant, policy, pf, dep, notes, max_new_tokens, text_file, fuse,
                    compare_config, max_ppl_tokens)


def _run(src, arch, net, tok, ids, quant, policy, pf, dep, notes, max_new_tokens, text_file, fuse, compare_config,
         max_ppl_tokens) -> EmulateResult:
    # generation, captured step by step
    decode_profiles: list[Profile] = []
    generated: list[int] = []
    with torch.no_grad():
        with Recorder(quant=quant, model=net) as rec:
            out = net(ids, use_cache=True, logits_to_keep=1)
            nxt = _logits(out)[:, -1].argmax(-1, keepdim=True)
        prefill = _price(rec.take("prefill"), dep, pf, fuse)
        generated.append(int(nxt))
        cache = out.past_key_values
        steps = max(1, max_new_tokens - 1)
        for _ in range(steps):
            with Recorder(quant=quant, model=net) as rec:
                out = net(nxt, past_key_values=cache, use_cache=True)
                nxt = _logits(out)[:, -1].argmax(-1, keepdim=True)
            decode_profiles.append(_price(rec.take("decode"), dep, pf, fuse))
            cache = out.past_key_values
            if len(generated) < max_new_tokens:
                generated.append(int(nxt))

        # numerics: the same sequence in full precision and in the chip's formats
        seq = torch.cat([ids, torch.tensor([generated], dtype=ids.dtype)], dim=1)
        ref_out = net(seq, use_cache=False, output_hidden_states=True)
        with Recorder(quant=quant, record=False, model=net):
            test_out = net(seq, use_cache=False, output_hidden_states=True)
        num = divergence(_logits(ref_out).float(), _logits(test_out).float())
        num["layers"] = layer_deltas(getattr(ref_out, "hidden_states", None) or (),
                                     getattr(test_out, "hidden_states", None) or ())
        num.update(format=policy.label(), policy=policy.to_dict())
        if text_file is not None:
            num.update(_perplexity(net, tok, text_file, quant, max_ppl_tokens))

    config_path = None
    if arch is not None and compare_config:
        L = int(ids.shape[1])
        sp = step_cost(arch, dep, prefill_step(1, L))
        sd = step_cost(arch, dep, decode_step(1, L))
        config_path = {"prefill_time_s": sp.time_s, "decode_time_s": sd.time_s,
                       "prefill_ratio": prefill.time_s / sp.time_s if sp.time_s else None,
                       "decode_ratio": decode_profiles[0].time_s / sd.time_s if sd.time_s else None,
                       "note": "step_cost of the same ModelArch and deployment; decode = the first decode step"}
    text = tok.decode(generated) if tok is not None else None
    return EmulateResult(model=src.model_id, architecture=type(net).__name__,
                         num_layers=int(getattr(net.config, "num_hidden_layers", 0)), chip=dep.chip.id,
                         calibration=dep.calibration.id, policy=policy.to_dict(), prompt_len=int(ids.shape[1]),
                         num_new_tokens=len(generated), prefill=prefill, decode_steps=decode_profiles,
                         numerics=num, config_path=config_path, generated_ids=generated, text=text,
                         random_weights=not src.has_weights, notes=notes)


def _perplexity(net, tok, text_file, quant, max_tokens: int) -> dict:
    p = Path(text_file)
    if not p.is_file():
        raise SpecError(f"text file {str(p)!r} does not exist")
    if tok is None:
        raise SpecError("perplexity needs a tokenizer in the model directory")
    ids = tok(p.read_text(), return_tensors="pt")["input_ids"][:, :max_tokens]
    if ids.shape[1] < 2:
        raise SpecError(f"text file {str(p)!r} holds fewer than 2 tokens")
    ref_nll, n = negative_log_likelihood(_logits(net(ids, use_cache=False)), ids)
    with Recorder(quant=quant, record=False, model=net):
        q_nll, _ = negative_log_likelihood(_logits(net(ids, use_cache=False)), ids)
    ppl_ref, ppl = perplexity_from(ref_nll, n), perplexity_from(q_nll, n)
    return {"perplexity_ref": ppl_ref, "perplexity": ppl, "perplexity_delta": ppl - ppl_ref,
            "perplexity_tokens": n}
