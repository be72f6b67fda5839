"""Runtime: how a serving engine runs a step's kernels on the chip.

The kernel oracle prices each kernel as it was measured (one kernel at a time, replayed
from a captured graph). A real engine changes what runs and what it costs around the
kernels: it fuses some of them (the fp8 activation quantization into the norm or the
activation that produces its input, the gated activation into the up-projection's
epilogue, rotary embedding into the attention kernel), launches them from a captured
graph or one by one from the host, and spends host time every step (scheduling,
preparing inputs, sampling bookkeeping) that may or may not overlap the accelerator's
work. These knobs are *semantics* here (priced by :mod:`seedchip.perf.pricer`); their
values for a given engine are data with sources in the engine profiles
(``seedchip/serve/engines.yaml``).

The default ``Runtime()`` is the bare oracle: kernels as measured, activation
quantization fused, nothing else fused (an MoE layer's grouped GEMMs read their rows
through the sorted index), no launch or host time.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..spec_base import FrozenSpec, Seconds


class Runtime(FrozenSpec):
    id: str = Field("kernels", description="name of the engine profile the values come from")
    quant_kernels: tuple[Literal["norm", "act", "attn"], ...] = Field(
        (), description="GEMM inputs whose fp8/int8/fp4 quantization runs as a kernel of its own: the norm's output "
                        "(QKV and up projections), the gated activation's (down projection), the attention's "
                        "(output projection); the others are fused into the kernel that produces them")
    quant_scale: Literal["static", "per-token", "per-tensor"] = Field(
        "per-tensor", description="how those kernels scale: a calibrated static scale or per-token scales (one pass "
                                  "that reads and writes), or a dynamic per-tensor scale (an amax pass first)")
    fuse_gated_act: bool = Field(False, description="the gated activation (SwiGLU) runs in the up-projection GEMM's "
                                                    "epilogue: no activation kernel, half the GEMM output written")
    moe_fuse_gated_act: bool = Field(
        False, description="an MoE layer's grouped up-projection runs the gated activation in its epilogue (False: "
                           "the grouped GEMM writes gate and up, an activation kernel follows)")
    moe_permute: Literal["copy", "gather"] = Field(
        "gather", description="how an MoE layer's grouped GEMM gets its rows in expert order: 'copy': an expand kernel "
                              "writes each token's activation once per chosen expert; 'gather': the GEMM reads them "
                              "through the sorted index (a sort and a finalize kernel run in both)")
    fuse_rotary: bool = Field(False, description="rotary embedding is applied inside the attention kernel")
    graph_max_tokens: int = Field(0, ge=0, description="steps of at most this many tokens replay a captured "
                                                       "graph (0: never); others launch kernel by kernel")
    graph_decode_only: bool = Field(True, description="graphs are captured for pure decode steps only "
                                                      "(False: any step within graph_max_tokens, piecewise)")
    launch_s: Seconds = Field(0.0, ge=0, description="host time to launch one kernel outside a graph")
    host_step_s: Seconds = Field(0.0, ge=0, description="host time per step: schedule, prepare inputs, synchronise")
    host_seq_s: Seconds = Field(0.0, ge=0, description="host time per scheduled sequence per step")
    overlap_host: bool = Field(False, description="the host prepares step n+1 while the chip runs step n")

    def graphed(self, num_tokens: int, num_seqs: int, prefill: bool) -> bool:
        """Whether a step of this shape replays a captured graph."""
        if not self.graph_max_tokens or num_tokens > self.graph_max_tokens:
            return False
        return not (prefill and self.graph_decode_only)

    def step_time(self, kernel_s: float, num_kernels: int, num_seqs: int, graphed: bool,
                  host_scale: float = 1.0) -> float:
        """A step's wall time from its kernels' time: kernels launched one by one cannot
        run faster than the host issues them; host work adds to it, or hides behind the
        previous step's kernels when the engine overlaps them. ``kernel_s`` and
        ``num_kernels`` may be arrays (a run of steps priced at once)."""
        most = np.maximum if isinstance(kernel_s, np.ndarray) else max
        device = kernel_s if graphed else most(kernel_s, num_kernels * self.launch_s)
        host = (self.host_step_s + self.host_seq_s * num_seqs) * host_scale
        return most(device, host) if self.overlap_host else device + host


KERNELS = Runtime()

__all__ = ["Runtime", "KERNELS"]
