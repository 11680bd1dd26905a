"""Execution: schedulers, the order manager (the one risk gate) and execution feedback / TCA.

* :mod:`keel.execution.schedule` -- ``TWAP``, ``VWAP``, ``ImplementationShortfall``, ``POV``,
  ``make_scheduler``, ``ExecutionContext``, ``ScheduleConfig``, ``allocate``;
* :mod:`keel.execution.profile` -- ``VolumeProfile`` (intraday volume curve);
* :mod:`keel.execution.oms` -- ``OrderManager``;
* :mod:`keel.execution.checks` -- pre-trade checks, ``PolicyGate``, circuit breakers;
* :mod:`keel.execution.feedback` -- ``TCA``, ``TCAReport``, ``summarize``;
* :mod:`keel.execution.bars` -- minute bars for schedules and replays.

Import from the submodules (this package imports nothing, so a scheduler user does not load
the store).
"""
