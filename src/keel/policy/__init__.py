"""keel.policy: when to rebalance and which orders may go out.

* :mod:`keel.policy.triggers` -- drift, calendar, cooldown, windows, risk overrides, kill switch
  -> :class:`~keel.policy.triggers.RebalanceDecision`.
* :mod:`keel.policy.governance` -- :class:`~keel.policy.governance.GovernanceChain` of
  pre-trade rules -> one :class:`~keel.policy.verdicts.Verdict` per order.
"""
