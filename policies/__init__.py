"""Quota policies: TOML files in this folder, their loader and the evaluator.

`load_policies(dir)` returns {name: Policy}; `evaluate(policy, usage, now)` returns a Decision.
"""

from policies.evaluate import Decision, Usage, evaluate, period_keys
from policies.model import POLICY_DIR, Limits, Policy, PolicyError, load_policies

__all__ = ["Decision", "Usage", "evaluate", "period_keys", "POLICY_DIR", "Limits", "Policy",
           "PolicyError", "load_policies"]
