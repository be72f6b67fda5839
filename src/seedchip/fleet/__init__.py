"""fleet/: how many to buy. A procurement planner for a mixed fleet of our own chips and GPUs.

    import seedchip.fleet as fleet
    r = fleet.plan("examples/plan/two_year_plan.yaml")              # == seedchip plan FILE --json
    r.to_dict()["quarters"][0]["purchases"]
    fleet.plan("examples/plan/two_year_plan.yaml", what_if=["hbm_supply=-30%"]).to_dict()["what_if"]["diff"]

A scenario (YAML, validated) gives demand per model class per quarter, device options (our chip
generations with a production ramp, GPUs with price, availability and lead time), HBM supply,
facility power, a budget per year, lifetimes and an installed base. Each device x class gets its
capacity under the class's SLOs from the serving simulator (cached on disk). A MILP (SciPy /
HiGHS) picks whole purchase units per quarter and the share of each class served by each device
pool at the least cost (capex + energy), and reports binding constraints with shadow prices,
unmet demand and cost per million tokens; an infeasible scenario is explained by the limit that
makes it so and by how much.
"""

from .capacity import Capacity, cache_dir, resolve_capacities
from .planner import PlanResult, diff_plans, plan, solve_problem
from .problem import Problem, build_problem
from .resolve import load_scenario, parse_scenario
from .scenario import Scenario
from .whatif import apply_what_if, apply_what_ifs

__all__ = ["plan", "PlanResult", "Scenario", "load_scenario", "parse_scenario", "Capacity", "resolve_capacities",
           "cache_dir", "Problem", "build_problem", "solve_problem", "diff_plans", "apply_what_if", "apply_what_ifs"]
