"""The languages a person reads OUP in: English (the default) and Dutch.

A text of the catalogue is a ``Text``: a plain string in the default language, which
may carry its other languages (``title: {nl: Gebouwen, en: Buildings}`` in a
collection.yml). Code that does not care reads it as the string it is; what a person
reads asks ``text.in_(language)``.

Which language an answer is in: ``?lang=`` if it names one offered, else the first
offered one of ``Accept-Language`` (by its weights), else the default (``negotiate``).
"""
from __future__ import annotations

import re
from typing import Any

DEFAULT = "en"
LANGUAGES = ("en", "nl")
# pygeoapi's names for them (config/pygeoapi.yml `languages`), which it writes in
# Content-Language: OUP's own answers say the same
LOCALES = {"en": "en-US", "nl": "nl-NL"}
_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}|\*)(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


def negotiate(lang: str | None, accept_language: str | None) -> str:
    """The language of an answer: ``lang`` (a query parameter) first, then the header."""
    if lang:
        code = lang.strip().lower()[:2]
        if code in LANGUAGES:
            return code
    ranked = []
    for n, part in enumerate((accept_language or "").split(",")):
        m = _RANGE.match(part)
        if not m:
            continue
        try:
            weight = float(m.group(2)) if m.group(2) else 1.0
        except ValueError:
            continue
        ranked.append((-weight, n, m.group(1).lower()))
    for weight, _, code in sorted(ranked):
        if weight < 0 and code in LANGUAGES:
            return code
    return DEFAULT


def current() -> str:
    """The language of the request being answered (``oup.http.gate`` negotiated it)."""
    from flask import g, has_request_context

    return g.get("language", DEFAULT) if has_request_context() else DEFAULT


class Text(str):
    """A text in the default language, with its translations (``{language: text}``)."""

    translations: dict[str, str]

    def __new__(cls, value: str | dict[str, str]) -> "Text":
        if isinstance(value, Text):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(LANGUAGES)
            if unknown:
                raise ValueError(f"languages are {', '.join(LANGUAGES)}, not "
                                 f"{', '.join(sorted(unknown))}")
            if not value:
                raise ValueError("a text in no language")
            text = super().__new__(cls, value.get(DEFAULT) or next(iter(value.values())))
            text.translations = dict(value)
            return text
        text = super().__new__(cls, value)
        text.translations = {}
        return text

    def in_(self, language: str) -> str:
        """This text in ``language``; in the default language where it has none."""
        return self.translations.get(language) or str(self)

    def localised(self) -> str | dict[str, str]:
        """As pygeoapi's configuration takes it: a string, or ``{language: text}``."""
        return dict(self.translations, **{DEFAULT: self.in_(DEFAULT)}) if self.translations \
            else str(self)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any):
        from pydantic_core import core_schema

        declared = core_schema.union_schema([
            core_schema.str_schema(),
            core_schema.dict_schema(core_schema.str_schema(), core_schema.str_schema())])
        return core_schema.no_info_after_validator_function(
            cls, declared, serialization=core_schema.plain_serializer_function_ser_schema(
                lambda t: t.translations or str(t)))


def in_language(value: Any, language: str) -> Any:
    """``value`` with every ``Text`` in it (also in lists) in ``language``."""
    if isinstance(value, Text):
        return value.in_(language)
    if isinstance(value, list):
        return [in_language(v, language) for v in value]
    return value
