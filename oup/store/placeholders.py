"""The stores' one SQL style: ``?`` placeholders (SQLite's), spelled for psycopg here.

A module of its own, so that what runs PostgreSQL statements (the stores, their
migrations) shares it without importing one another.
"""
from __future__ import annotations


def pg_sql(sql: str) -> str:
    """``?`` placeholders (outside quotes) -> ``%s``; every literal ``%`` doubled."""
    out, quote_char = [], None
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote_char:
            out.append(ch)
            if ch == quote_char:
                quote_char = None
        elif ch in "'\"":
            quote_char = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)
