"""A commented chip YAML to start a design from (``seedchip chips --template``): every field
the spec takes, with its unit and what it means. ``--chip mine.yaml`` accepts it as is."""

TEMPLATE = """\
# A chip for SeedChip: seedchip chips --template > mine.yaml, edit, then --chip mine.yaml
# (seedchip estimate --chip mine.yaml --model llama-3.1-8b; seedchip silicon --chip mine.yaml).
# Numbers carry their unit as text ("989 TFLOP/s", "141 GB", "4.8 TB/s", "1.4 GHz", "700 W");
# decimal prefixes (k, M, G, T, P) are powers of 1000 and binary ones (Ki, Mi, Gi) powers of 1024.
# These values are an example design, not a product: replace them with yours and say where each
# one comes from under `sources` (estimate: true for a number that is not a published fact).
id: my-chip                  # short name used in results
name: My inference chip
vendor: me
year: 2027
kind: asic                   # asic or gpu
process_node: tsmc-n4        # a node the silicon model knows (see src/seedchip/silicon/nodes.yaml)
matrix:                      # the matrix (tensor) units
  peak_flops_per_s:          # dense peak per format; a format left out has no matrix path
    bf16: 1000 TFLOP/s
    fp8: 2000 TFLOP/s
    int8: 2000 TFLOP/s
    fp4: 4000 TFLOP/s
  num_cores: 32              # matrix cores
  array_rows: 128            # MAC array of one core (bf16 rows x columns)
  array_cols: 128
  clock_hz: 1.0 GHz          # must agree with the peak: cores x rows x cols x 2 x clock = bf16 peak
vector_flops_per_s: 60 TFLOP/s     # FP32 vector units (norms, softmax, activations)
exp_ops_per_s: 4 TOP/s             # exponentials per second (softmax)
sram:
  capacity_bytes: 64 MB      # shared on-chip SRAM
  per_core_bytes: 1 MiB      # core-local buffer
  bw_bytes_per_s: 30 TB/s    # shared SRAM aggregate bandwidth
hbm:
  generation: hbm3e          # hbm3, hbm3e or hbm4
  num_stacks: 6
  capacity_per_stack_bytes: 24 GiB
  bw_per_stack_bytes_per_s: 1.2 TB/s
links:                       # scale-up links (all-reduce, all-to-all inside a node)
  bw_per_direction_bytes_per_s: 450 GB/s
  latency_s: 2 us
  topology: switch           # switch or ring
node:
  scale_up_size: 8           # chips on the scale-up links
  scale_out_bw_per_direction_bytes_per_s: 400 Gb/s   # NIC per chip
  scale_out_latency_s: 5 us
tdp_w: 700 W
energy:                      # power model: idle, an active floor while kernels run, energy per FLOP and byte
  idle_w: 80 W
  active_w: 300 W
  matrix_j_per_flop: {bf16: 0.12 pJ/FLOP, fp8: 0.06 pJ/FLOP, int8: 0.055 pJ/FLOP, fp4: 0.03 pJ/FLOP}
  vector_j_per_flop: 1.5 pJ/FLOP
  sram_j_per_byte: 0.4 pJ/bit
  hbm_j_per_byte: 7 pJ/bit
  link_j_per_byte: 4 pJ/bit
sources:                     # one entry per group of figures
  - what: every figure above (example design)
    document: ESTIMATE (template; replace with your design document)
    year: 2027
    estimate: true
"""


def chip_template() -> str:
    """The commented chip YAML ``seedchip chips --template`` prints."""
    return TEMPLATE


__all__ = ["chip_template", "TEMPLATE"]
