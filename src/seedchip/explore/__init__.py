"""explore/: which chip to build. Design spaces in YAML (axes over chip parameters,
constraints, a workload mix, objectives), grid / random / Optuna (TPE, NSGA-II) search,
the Pareto frontier, a local process pool or Ray, every point in DIR/results.duckdb.

    from seedchip.explore import explore
    r = explore("examples/explore/inference_asic.yaml", out="runs/asic1", workers=2)
    r.to_dict()["frontier"]      # == `seedchip explore ... --json`
"""

from .evaluate import Context, evaluate_baseline, evaluate_point
from .pareto import frontier, pareto_mask
from .runner import ExploreResult, explore
from .space import AXES, OBJECTIVES, Space, load_space, parse_space, point_key
from .variant import VariantError, make_variant

__all__ = ["explore", "ExploreResult", "Space", "load_space", "parse_space", "point_key", "AXES", "OBJECTIVES",
           "pareto_mask", "frontier", "evaluate_point", "evaluate_baseline", "Context", "make_variant",
           "VariantError"]
