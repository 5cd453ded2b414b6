"""The Flask-free core every other package builds on.

Settings (``config``), errors carrying their HTTP status (``errors``), the layer catalogue and
the shared vocabularies (``catalog``), geometry rules (``geometry``), the database pool and
migrations (``db``), the audit log (``audit``), accounts and tokens (``accounts``), the UI text
catalogue (``i18n``) and the generic feature store of the layer API (``features``). It imports
nothing of ``gisapp``'s other packages, ``geodata``, ``routing``, ``layers`` or Flask; the import
contracts (``.importlinter``) check it.
"""
