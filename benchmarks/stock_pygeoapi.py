"""Stock pygeoapi, the peer in benchmarks/features.py.

gunicorn entry point: ``stock_pygeoapi:APP``; ``python stock_pygeoapi.py openapi CFG OUT``
writes the OpenAPI document pygeoapi needs before it starts.

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


def __getattr__(name):  # gunicorn asks for APP only once the config env is set
    if name == "APP":
        from pygeoapi.flask_app import APP

        return APP
    raise AttributeError(name)


if __name__ == "__main__" and sys.argv[1:2] == ["openapi"]:
    import json
    from pathlib import Path

    import yaml
    from pygeoapi.openapi import get_oas

    cfg = yaml.safe_load(Path(sys.argv[2]).read_text())
    Path(sys.argv[3]).write_text(json.dumps(get_oas(cfg), default=str))
