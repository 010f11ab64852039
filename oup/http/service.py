"""The service's own endpoints: ``/health``, ``/metrics``, the OpenAPI document, and the
problem types (``/problems/{code}``) every problem document's ``type`` points to."""
from __future__ import annotations

import os
from html import escape
from typing import Callable

from oup.errors import error_table
from oup.http.problems import describe
from oup.http.responses import OPENAPI_JSON
from oup.http.routes import Call, Endpoint, Format, Param
from oup.languages import current


def endpoints(store, metrics, openapi_doc: Callable[[str], str],
              extra_metrics: Callable[[], str]) -> list[Endpoint]:
    from flask import Response

    def health(call: Call):
        state = dict(store.health(), worker=os.getpid())  # which worker answered
        return state, 200 if state["status"] == "ok" else 503

    def metrics_text(call: Call):
        return Response(metrics.render() + extra_metrics(),
                        mimetype="text/plain; version=0.0.4")

    def openapi(call: Call):
        return Response(openapi_doc(current()), content_type=OPENAPI_JSON)  # its language

    def problem_type(call: Call):
        doc = describe(call.path["code"])
        if call.format.key == "json":
            return doc
        title = escape(f"{doc['code']}: {doc['status']} {doc['title']}")
        return Response(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>'
                        f"{title}</title></head><body><main><h1>{title}</h1><p>"
                        f"{escape(doc['description'])}</p></main></body></html>",
                        mimetype="text/html")

    json_doc = (Format("json", "application/json"),)
    oas = (Format("json", OPENAPI_JSON, ("application/json",)),)
    return [
        Endpoint("/health", "Health of the service and its store", health, "server",
                 "getHealth", formats=json_doc,
                 responses={"503": {"description": "the store is not answering"}}),
        Endpoint("/metrics", "Prometheus metrics (text exposition format)", metrics_text,
                 "server", "getMetrics", formats=(Format("text", "text/plain"),)),
        Endpoint("/openapi.json", "This OpenAPI document", openapi, "server", "getOpenAPIJson",
                 formats=oas),
        Endpoint("/api", "This OpenAPI document", openapi, "server", "getAPI", formats=oas),
        Endpoint("/problems/{code}", "What a problem type means (the `type` of a problem "
                 "document)", problem_type, "server", "getProblemType",
                 params=(Param("code", "a problem type",
                               {"type": "string", "enum": sorted(error_table())}, "path"),),
                 formats=(Format("json", "application/json"), Format("html", "text/html"))),
    ]
