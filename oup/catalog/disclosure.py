"""Statistical disclosure control, as CBS practises it, applied before publication.

Rules are declared per collection (``disclosure:`` in collection.yml) and applied once,
at import: the store only ever holds the protected values, so every output (items,
single items, every format, sorting, filtering) publishes the same thing and a filter
on a suppressed cell cannot tell more than "suppressed" (it is NULL).

- ``secret_values``: source codes meaning "secret" (CBS: -99997) become suppressed.
- ``min_group_size``: the fields of a rule are suppressed in a row whose group (e.g.
  its number of inhabitants) is below the threshold (income only for >= 100 people).
- ``min_count``: a count below k is suppressed (small cells identify people).
- ``round_to``: published counts are rounded to multiples of k.
- ``sums``: a total with its parts. Where exactly one part is suppressed and the total
  is published, the part could be recomputed: the smallest other part is suppressed
  as well (secondary suppression), repeatedly, until that is no longer possible.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DisclosureRule:
    fields: tuple[str, ...]
    min_group_size: int | None = None
    min_count: int | None = None
    round_to: int | None = None


@dataclass(frozen=True)
class SumConstraint:
    total: str
    parts: tuple[str, ...]


@dataclass
class DisclosurePolicy:
    group_size_field: str | None = None
    secret_values: tuple = (-99997,)
    rules: list[DisclosureRule] = field(default_factory=list)
    sums: list[SumConstraint] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg) -> "DisclosurePolicy":
        return cls(
            group_size_field=cfg.group_size_field,
            secret_values=tuple(cfg.secret_values),
            rules=[DisclosureRule(tuple(r.fields), r.min_group_size, r.min_count, r.round_to)
                   for r in cfg.rules],
            sums=[SumConstraint(s.total, tuple(s.parts)) for s in cfg.sums])

    def fields(self) -> set[str]:
        names = {f for r in self.rules for f in r.fields}
        names |= {s.total for s in self.sums} | {p for s in self.sums for p in s.parts}
        return names | ({self.group_size_field} if self.group_size_field else set())


def protect(row: dict[str, Any], policy: DisclosurePolicy) -> tuple[dict, set[str]]:
    """The row as it may be published, and the names of the fields suppressed."""
    out = dict(row)
    hidden: set[str] = set()
    for name, value in row.items():
        if value in policy.secret_values:
            hidden.add(name)
    group = row.get(policy.group_size_field) if policy.group_size_field else None
    for rule in policy.rules:
        for name in rule.fields:
            value = row.get(name)
            if value is None or name in hidden:
                continue
            if rule.min_group_size is not None and (
                    group is None or group in policy.secret_values or group < rule.min_group_size):
                hidden.add(name)
            elif rule.min_count is not None and value < rule.min_count:
                hidden.add(name)
    # secondary suppression: no suppressed part may be recomputed from its total
    changed = True
    while changed:
        changed = False
        for s in policy.sums:
            if s.total in hidden or row.get(s.total) is None:
                continue
            gone = [p for p in s.parts if p in hidden]
            if len(gone) == 1:
                left = [p for p in s.parts if p not in hidden and row.get(p) is not None]
                if left:
                    hidden.add(min(left, key=lambda p: row[p]))
                    changed = True
                else:
                    hidden.add(s.total)
                    changed = True
    for name in hidden:
        out[name] = None
    for rule in policy.rules:
        if rule.round_to:
            for name in rule.fields:
                if out.get(name) is not None:
                    out[name] = int(rule.round_to * round(out[name] / rule.round_to))
    return out, hidden
