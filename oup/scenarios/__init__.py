"""Scenarios: a named set of proposed changes (features added, changed or removed)
layered over collections, never written into them. The store keeps them
(``oup.store.scenarios``); this package says who may do what with one, for every path
that names one (``/scenarios``, ``items?scenario=``, the writes, ``/map``, ``/viewer``,
the processes).

Who may: a scenario is its owner's and the roles they share it with; to anyone else
(and to the anonymous, after a 401) it is not there (404), on every path. Making one of
a collection, or changing what one proposes for it, takes one of the roles the
collection's catalogue entry names in ``scenarios`` (as ``editable`` names who may
write it); without one, a 403.
"""
from __future__ import annotations

from oup.errors import Forbidden, InvalidQuery, NotFound, Unauthorized

SIGN_IN = "(Authorization: Bearer <token>, or X-API-Key: <key>)"


def signed_in(identity, what: str) -> None:
    if identity is None or not identity.authenticated:
        raise Unauthorized(f"sign in to {what} {SIGN_IN}")


def sees(scenario: dict, identity) -> bool:
    """Whether ``identity`` may see ``scenario``: it made it, or has a role it is shared
    with."""
    return identity is not None and identity.authenticated and (
        scenario["owner"] == identity.who or bool(set(scenario["shared_with"])
                                                  & set(identity.roles)))


def readable(store, identity, sid, parameter: str = "scenario") -> dict:
    """The scenario ``sid``, if ``identity`` may see it (else 401 or 404)."""
    signed_in(identity, "see a scenario")
    found = store.scenario(str(sid)) if isinstance(sid, str) and sid else None
    if found is None or not sees(found, identity):
        raise NotFound(f"no scenario {sid!r} ({parameter})")
    return found


def covering(store, identity, sid, cid: str) -> dict:
    """``readable``, and a scenario of collection ``cid`` (else 400)."""
    found = readable(store, identity, sid)
    if cid not in found["collections"]:
        raise InvalidQuery(f"scenario {sid} proposes changes to "
                           f"{', '.join(found['collections'])}, not to {cid}", "scenario")
    return found


def may_propose(coll, identity) -> None:
    """403 unless ``identity`` has one of the roles that make scenarios of ``coll``."""
    if not identity.roles & set(coll.scenarios):
        raise Forbidden(f"your roles may not propose changes to {coll.id}; that takes one "
                        f"of {', '.join(sorted(coll.scenarios)) or 'no role'}")
