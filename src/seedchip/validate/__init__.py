"""How wrong are we: the oracle against public measurements (never fitted on them)."""
