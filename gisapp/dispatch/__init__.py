"""Live dispatch on the one 110 + 122 platform (no Flask).

``rules`` (the versioned type catalogue, leg lifecycle and dispatch rules in ``rules.toml``),
``records`` (incident and leg reads, event log), ``intake`` (calls, owners, duplicates),
``recommend`` (units by road time), ``legs`` (plan, dispatch, assign, lifecycle, merge),
``units`` (status board, positions), ``sla`` (clocks, overdue sweep, metrics), ``events``
(the live event log and its SSE fan-out), ``gazetteer`` (address text to a point) and
``simulate`` (a live feed for the demo).
"""
