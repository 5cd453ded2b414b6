"""The Zouping police situational-awareness map server (gisapp).

Packages: ``core`` (Flask-free foundation), ``dispatch`` and ``planning`` (domain services),
``web`` (the Flask app: ``gisapp.web.create_app``), ``cli`` (the ``gisapp`` command) and the
``maintenance`` thread. Importing ``gisapp`` imports none of them.
"""

__version__ = "0.1.0"
