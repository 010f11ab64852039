"""OUP's own documents (tile sets, tile matrix sets, styles) as pages for a person: the
site's frame (``config/templates/_base.html``), in the request's language, rendered by
pygeoapi's template machinery with its configuration and message catalogue, so these
pages look and translate like the collection pages pygeoapi renders."""
from __future__ import annotations

from oup.http.routes import Format
from oup.languages import current

HTML = Format("html", "text/html")


def html_page(template: str, data: dict):
    """``template`` (under ``config/templates``) filled with ``data``."""
    from babel import Locale
    from flask import Response
    from pygeoapi.util import render_j2_template

    import pygeoapi.flask_app as pygeoapi_flask

    api = pygeoapi_flask.api_
    html = render_j2_template(api.tpl_config, api.config["server"]["templates"], template,
                              data, Locale.parse(current()))
    return Response(html, mimetype="text/html", headers={"Vary": "Accept-Language"})


def links(href: str) -> list[dict]:
    """The page's own links: itself, and its JSON (the frame's language switch and
    ``json`` link follow them)."""
    return [{"rel": "self", "type": "text/html", "href": f"{href}?f=html"},
            {"rel": "alternate", "type": "application/json", "href": f"{href}?f=json"}]
