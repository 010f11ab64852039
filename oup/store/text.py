"""Free-text search, as both stores answer it: the words of ``q``, each matched as the
start of a word in the collection's declared text attributes (``search:`` in its
collection.yml), all of them in one feature; the first declared attribute weighs most.

The GeoPackage store keeps an SQLite FTS5 index beside each table (tokenizer
``unicode61`` without diacritics: "Delfshaven" finds "délfshaven"; SQLite has no Dutch
stemmer, so "straten" does not find "straat"); PostGIS a ``tsvector`` column with a GIN
index, parsed with PostgreSQL's ``dutch`` configuration (stems: "straten" finds
"straat"), or ``simple`` where the server has no ``dutch``. Ranks (higher is better) are
FTS5's BM25 and PostgreSQL's ``ts_rank``: each orders one store's hits, the two are not
on one scale.
"""
from __future__ import annotations

import re

from oup.store.base import InvalidQuery, Unavailable

MAX_WORDS = 16
MAX_LENGTH = 200
# a word: letters and digits (the stores' tokenizers split on the rest, '_' too)
_WORD = re.compile(r"[^\W_]+")
# how much each declared attribute weighs, the first most (PostgreSQL's weights A..D,
# with ts_rank's default values; FTS5's BM25 takes the same numbers)
WEIGHTS = (("A", 1.0), ("B", 0.4), ("C", 0.2), ("D", 0.1))
TEXT_COLUMN = "_oup_text"  # PostGIS: the tsvector


def words(text: str) -> list[str]:
    """The words of ``q``, lower case; InvalidQuery when there is nothing to look for."""
    if len(text) > MAX_LENGTH:
        raise InvalidQuery(f"q: at most {MAX_LENGTH} characters", "q")
    found = [w.lower() for w in _WORD.findall(text)]
    if not found:
        raise InvalidQuery("q: give at least one word (letters or digits)", "q")
    if len(found) > MAX_WORDS:
        raise InvalidQuery(f"q: at most {MAX_WORDS} words", "q")
    return found


def weight(position: int) -> tuple[str, float]:
    return WEIGHTS[min(position, len(WEIGHTS) - 1)]


def searched(meta: dict, cid: str) -> list[str]:
    """The collection's text attributes, as its table was written with them."""
    names = meta.get("search")
    if not names:
        raise NotIndexed(f"collection {cid!r} has no free-text index: declare its text "
                         f"attributes (search: in its collection.yml) and run "
                         f"`oup import {cid}`")
    return names


class NotIndexed(Unavailable):
    """The collection was imported without the free-text index its catalogue declares."""


def fts5_query(text: str) -> str:
    """FTS5 MATCH syntax: every word, each as a prefix."""
    return " ".join(f'"{w}"*' for w in words(text))


def tsquery(text: str) -> str:
    """``to_tsquery`` syntax: every word, each as a prefix."""
    return " & ".join(f"'{w}':*" for w in words(text))
