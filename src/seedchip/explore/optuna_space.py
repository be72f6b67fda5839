"""A Space's axes as Optuna distributions; stored rows as Optuna trial values."""

from __future__ import annotations

from .space import AXES, Range, Space

WORST = 1e30


def distributions(space: Space) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    out = {}
    for name, spec in space.axes.items():
        if isinstance(spec, Range):
            if AXES[name][0] == "int":
                out[name] = IntDistribution(int(spec.low), int(spec.high), log=spec.log,
                                            step=int(spec.step) if spec.step and not spec.log else 1)
            else:
                out[name] = FloatDistribution(float(spec.low), float(spec.high), log=spec.log and spec.step is None,
                                              step=None if spec.log or spec.step is None else float(spec.step))
        else:
            out[name] = CategoricalDistribution(list(spec))
    return out


def to_trial_values(row: dict, objectives: list[str], directions: list[str]) -> list[float]:
    """Objective values; an infeasible point gets the worst value in every direction (its
    trial is also marked infeasible for the sampler's constraint handling)."""
    if row["feasible"] and row.get("objectives"):
        return [float(row["objectives"][o]) for o in objectives]
    return [0.0 if d == "maximize" else WORST for d in directions]


__all__ = ["distributions", "to_trial_values"]
