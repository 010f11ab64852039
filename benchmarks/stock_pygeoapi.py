"""gunicorn entry point for stock pygeoapi, the peer in benchmarks/features.py.

pygeoapi's SQLiteGPKG provider loads SpatiaLite; the pyenv Pythons' sqlite3 cannot
load extensions, so (as the project brief allows for benchmarks) pysqlite3 stands
in for the standard module when it is installed.
"""
import sys

try:
    import pysqlite3.dbapi2 as _sqlite

    sys.modules["sqlite3"] = _sqlite
except ImportError:
    pass

from pygeoapi.flask_app import APP  # noqa: E402  (after the sqlite3 stand-in)

__all__ = ["APP"]
