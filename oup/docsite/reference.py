"""The reference pages' tables, made from the code itself so they cannot drift from it:
every field of ``collection.yml`` (the catalogue models), every setting (``Settings``),
every CLI verb (``oup.cli``) and every endpoint of OUP's own (the ``Endpoint``
declarations that also route the requests and write the OpenAPI document).

``oup.docsite.hooks`` puts each table where a page says ``<!-- reference: NAME -->``.
"""
from __future__ import annotations

import tempfile
import types
import typing
from enum import Enum
from pathlib import Path

import click
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[2]


def sources() -> list[Path]:
    """The code these tables are read from (a change of it makes the site stale)."""
    oup = ROOT / "oup"
    return [oup / "settings.py", oup / "cli.py", oup / "catalog" / "__init__.py",
            oup / "errors.py", oup / "events" / "__init__.py",
            *sorted((oup / "http").glob("*.py")), Path(__file__)]


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _type(annotation) -> str:
    """A field's type as a reader of YAML knows it."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(m.value for m in annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin is list:
        return f"list of {_type(typing.get_args(annotation)[0])}"
    if origin is dict:
        return "mapping"
    names = {str: "text", int: "integer", float: "number", bool: "true/false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{value!r}`" if value else ""
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return ""
    value = field.default.value if isinstance(field.default, Enum) else field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"  # as YAML and the environment spell it
    return f"`{value}`" if value != "" else "empty"


def _models(annotation) -> list[type[BaseModel]]:
    """The catalogue models a field holds (directly, in a list or a mapping)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models(a)]


def catalogue_fields(model: type[BaseModel] | None = None, prefix: str = "") -> list[tuple]:
    """(dotted name, type, default, description) of every field of ``collection.yml``."""
    from oup.catalog import Collection

    rows = []
    for name, field in (model or Collection).model_fields.items():
        if field.exclude or (model is None and name == "id"):
            continue  # the folder, and the id it gives
        dotted = f"{prefix}{name}"
        rows.append((dotted, _type(field.annotation), _default(field), field.description or ""))
        for inner in _models(field.annotation):
            rows += catalogue_fields(inner, dotted + ("[]." if typing.get_origin(
                field.annotation) is list else "."))
    return rows


def catalogue_table() -> str:
    head = "| field | type | default | meaning |\n|---|---|---|---|\n"
    return head + "".join(f"| `{n}` | {t} | {d} | {_cell(m)} |\n"
                          for n, t, d, m in catalogue_fields())


def settings_rows() -> list[tuple]:
    """(variable, type, default, description) of every setting."""
    from oup.settings import Settings

    rows = []
    for name, field in Settings.model_fields.items():
        default = _default(field)
        if str(ROOT) in default:  # a folder of this checkout: say it as the reader's
            default = default.replace(str(ROOT), ".")
        rows.append((f"OUP_{name.upper()}", _type(field.annotation), default,
                     field.description or ""))
    return rows


def settings_table() -> str:
    head = "| variable | type | default | meaning |\n|---|---|---|---|\n"
    return head + "".join(f"| `{v}` | {t} | {d} | {_cell(m)} |\n"
                          for v, t, d, m in settings_rows())


def cli_verbs(group: click.Group | None = None, prefix: str = "oup") -> list[tuple]:
    """(command line, help, options) of every verb of ``oup``, groups walked."""
    from oup.cli import main

    group = group or main
    rows = []
    for name, command in sorted(group.commands.items()):
        line = f"{prefix} {name}"
        if isinstance(command, click.Group):
            rows += cli_verbs(command, line)
            continue
        args = " ".join(p.human_readable_name.upper() + ("..." if p.nargs == -1 else "")
                        for p in command.params if isinstance(p, click.Argument))
        options = ", ".join(f"`{p.opts[0]}`" + (f" ({p.help})" if p.help else "")
                            for p in command.params if isinstance(p, click.Option))
        rows.append((f"{line} {args}".strip(), (command.help or "").split("\n\n")[0],
                     options))
    return rows


def cli_table() -> str:
    head = "| command | what it does | options |\n|---|---|---|\n"
    return head + "".join(f"| `{c}` | {_cell(h)} | {_cell(o)} |\n" for c, h, o in cli_verbs())


def endpoints() -> list:
    """OUP's own endpoint declarations, as ``create_app`` lists them, made over the demo
    catalogue and a throwaway empty store (nothing is served or read from it)."""
    from types import SimpleNamespace

    from oup.catalog import load_catalog
    from oup.http.app import own_endpoints
    from oup.security import AuditLog
    from oup.settings import Settings
    from oup.store import open_store

    with tempfile.TemporaryDirectory(prefix="oup-docs-") as tmp:
        settings = Settings(data_dir=Path(tmp), catalog_dir=ROOT / "collections",
                            database_url=None, jobs_url=None, audit_log=None)
        catalog = load_catalog(settings.catalog_dir)
        shared = SimpleNamespace(catalog=catalog, fields_of=lambda cid: [],
                                 audit=AuditLog(Path(tmp) / "audit.log"))
        own = own_endpoints(settings, catalog, open_store(settings.store_url), shared,
                            None, lambda language: "")
        return own.endpoints


def endpoints_table() -> str:
    head = "| methods | path | what it answers | tag |\n|---|---|---|---|\n"
    return head + "".join(f"| {', '.join(e.methods)} | `{e.path}` | {_cell(e.summary)} | "
                          f"{e.tag} |\n" for e in endpoints())


def errors_table() -> str:
    """The error table (``oup.errors``): every problem type a client can be answered."""
    from oup.errors import OUPError, error_table

    def when(cls) -> str:
        if cls is OUPError:
            return "a fault of OUP's own, never an answer to a client's input"
        return " ".join((cls.__doc__ or getattr(cls, "title", "")).split())

    head = "| status | code (`type`: /problems/{code}) | when |\n|---|---|---|\n"
    rows = sorted(error_table().values(), key=lambda cls: (cls.status, cls.code))
    return head + "".join(f"| {c.status} | `{c.code}` | {_cell(when(c))} |\n" for c in rows)


def events_table() -> str:
    """Every type of change event (``oup.events``), with the MQTT topic it goes to."""
    from oup.events import TOPIC_KINDS, TYPES

    head = "| type | MQTT topic (public collections) | when, and its `data` |\n|---|---|---|\n"
    return head + "".join(f"| `{t}` | `oup/events/collections/{{id}}/{TOPIC_KINDS[t]}` | "
                          f"{_cell(meaning)} |\n" for t, meaning in TYPES.items())


TABLES = {"collection-yml": catalogue_table, "settings": settings_table, "cli": cli_table,
          "endpoints": endpoints_table, "errors": errors_table, "events": events_table}
