"""MkDocs hooks (``mkdocs.yml``: ``hooks``): a page's ``<!-- reference: NAME -->`` becomes
the table ``oup.docsite.reference`` makes from the code, so the reference is the code's."""
from __future__ import annotations

import re

from mkdocs.exceptions import PluginError

from oup.docsite.reference import TABLES

MARK = re.compile(r"^<!-- reference: ([\w-]+) -->$", re.M)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def table(m: re.Match) -> str:
        if m.group(1) not in TABLES:
            raise PluginError(f"{page.file.src_path}: no reference table {m.group(1)!r} "
                              f"(there are {', '.join(TABLES)})")
        return TABLES[m.group(1)]()

    return MARK.sub(table, markdown)
