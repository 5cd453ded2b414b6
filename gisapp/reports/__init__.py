"""Reports (issue 14): the SLA and 满天星 figures of chiefs and the bureau's leadership.

Plain functions over a psycopg connection (no Flask): ``filters`` reads and checks a report's
period and filters, ``figures`` computes every figure from ``dispatch_leg`` and ``incident``
with the one definition of gisapp.dispatch.sla, ``ranking`` scores the stations from the
versioned weights file (``ranking.toml``), ``export`` writes the tables as XLSX and CSV.
"""
