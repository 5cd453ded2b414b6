"""Helpers of the tests (no fixtures: those live in the conftest.py of each area).

- ``database``: the test databases (create one, point a URL at another database, users per role)
- ``server``: the service over real HTTP in a thread, a client bound to it, log-in clients
- ``samples``: valid features of every layer, for the API round trips
- ``dispatch``: small worlds, units and device tokens of the live-dispatch tests, a real gunicorn
- ``planning``: the hand-made planning world (answers known by construction)
- ``maps``: the hand-made map world
- ``routing``: the hand-made road network, the Helsinki extract, comparison with pgRouting
- ``browser``: Debian's headless chromium through Playwright
- ``mvt``: a Mapbox Vector Tile decoder
- ``sseclient``: a server-sent-event reader
- ``pgtemp``: a throwaway PostgreSQL server that a test or benchmark may stop and start
"""
