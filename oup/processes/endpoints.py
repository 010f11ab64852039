"""OGC API Processes 1.0 over the jobs: ``/processes`` (the list, each description,
``/execution``), ``/jobs`` (the caller's jobs, each one's status and progress, its
``/results``, and DELETE to dismiss it).

An execute is checked here (400 naming the input), then queued for ``oup worker``: the
API never runs a job itself. ``Prefer: respond-async`` answers 201 at once, with the
job's URL as ``Location``; otherwise the answer waits for the job (at most
``OUP_JOBS_SYNC_SECONDS``; a longer one is answered as an asynchronous execute), in one of
the server's threads: at most ``OUP_JOBS_SYNC_WAITING`` of them wait at once, an execute
beyond that is answered as an asynchronous one at once.
Who may: an anonymous execute is a 401, a caller without one of the process's roles a
403; a job, its status and its results are seen by who started it only (others: 404).
"""
from __future__ import annotations

import json
import threading
import time

from oup.errors import Forbidden, InvalidQuery, NotFound, Unauthorized, Unprocessable, \
    UnsupportedMediaType
from oup.http.routes import Call, Endpoint, Format, Param
from oup.processes import Context, Process
from oup.processes.jobs import DONE, JobState, Jobs, iso
from oup.processes.result_collections import ResultCollections

PROCESSES_REL = "http://www.opengis.net/def/rel/ogc/1.0/processes"
JOBS_REL = "http://www.opengis.net/def/rel/ogc/1.0/job-list"
EXECUTE_REL = "http://www.opengis.net/def/rel/ogc/1.0/execute"
RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"
CONFORMANCE = [f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{c}" for c in
               ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss")]
JSON = (Format("json", "application/json"),)
POLL_SECONDS = (0.05, 0.5)  # how often a waiting execute looks at its job: first, at most


class Processes:
    def __init__(self, processes: dict[str, Process], jobs: Jobs, catalog, store,
                 base_url: str, audit, sync_seconds: float, sync_waiting: int = 2):
        self.processes, self.jobs, self.catalog, self.store = processes, jobs, catalog, store
        self.base, self.audit, self.sync_seconds = base_url.rstrip("/"), audit, sync_seconds
        self.waiting = threading.BoundedSemaphore(sync_waiting) if sync_waiting else None
        self.collections = ResultCollections(processes, jobs, self.base)

    def endpoints(self) -> list[Endpoint]:
        pid = Param("processId", "a process (see /processes)",
                    {"type": "string", "enum": sorted(self.processes)}, "path")
        jid = Param("jobId", "a job (see /jobs)", where="path")
        page = (Param("limit", "jobs per page", {"type": "integer", "minimum": 1,
                                                 "maximum": 1000}),
                Param("offset", "jobs to skip", {"type": "integer", "minimum": 0}))
        signed_in = dict(access=self._signed_in, responses=_PROBLEMS)
        return [
            Endpoint("/processes", "The processes offered (OGC API Processes)", self.offered,
                     "processes", "getProcesses", formats=JSON),
            Endpoint("/processes/{processId}", "A process: its inputs and outputs",
                     self.describe, "processes", "getProcessDescription", params=(pid,),
                     formats=JSON),
            Endpoint("/processes/{processId}/execution", "Run a process: as a job for the "
                     "workers; Prefer: respond-async answers 201 with its URL at once",
                     self.execute, "processes", "execute", methods=("POST",), params=(pid,),
                     formats=(Format("json", "application/json"),
                              Format("geojson", "application/geo+json")),
                     access=self._may_run, consumes=("application/json",), responses={
                         "201": {"description": "the job is queued; Location is its URL"},
                         "400": {"$ref": "#/components/responses/400"}, **_PROBLEMS},
                     description="Inputs are checked before the job is queued (400 naming "
                                 "the input). `response`: raw (the output itself) or "
                                 "document ({outputId: value})."),
            Endpoint("/jobs", "Your jobs, newest first", self.list_jobs, "processes",
                     "getJobs", params=page, formats=JSON, **signed_in),
            Endpoint("/jobs/{jobId}", "A job: its status and progress", self.status,
                     "processes", "getStatus", params=(jid,), formats=JSON, **signed_in),
            Endpoint("/jobs/{jobId}", "Dismiss a job: a queued or running one stops, a "
                     "finished one's results are dropped", self.dismiss, "processes",
                     "dismiss", methods=("DELETE",), params=(jid,), formats=JSON,
                     **signed_in),
            Endpoint("/jobs/{jobId}/results", "A finished job's results", self.results,
                     "processes", "getResult", params=(jid,),
                     formats=(Format("json", "application/json",
                                     ("application/geo+json",)),), **signed_in),
        ]

    # -- who may -------------------------------------------------------------------------
    @staticmethod
    def _signed_in(call: Call) -> None:
        if call.identity is None or not call.identity.authenticated:
            raise Unauthorized("sign in to run processes and see your jobs (Authorization: "
                               "Bearer <token>, or X-API-Key: <key>)")

    def _may_run(self, call: Call) -> None:
        self._signed_in(call)
        process = self.processes[call.path["processId"]]
        if not call.identity.roles & process.roles:
            raise Forbidden(f"your roles may not run {process.id}; that takes one of "
                            f"{', '.join(sorted(process.roles))}")

    # -- processes -----------------------------------------------------------------------
    def offered(self, call: Call):
        return {"processes": [self._summary(p) for p in self.processes.values()],
                "links": [{"rel": "self", "type": "application/json",
                           "href": f"{self.base}/processes"}]}

    def _summary(self, p: Process) -> dict:
        d = p.description
        summary = {k: v for k, v in d.items() if k not in ("inputs", "outputs")}
        summary["links"] = [{"rel": "self", "type": "application/json",
                             "title": "process description",
                             "href": f"{self.base}/processes/{p.id}"}]
        return summary

    def describe(self, call: Call):
        p = self.processes[call.path["processId"]]
        return {**p.description, "links": [
            {"rel": "self", "type": "application/json", "href": f"{self.base}/processes/{p.id}"},
            {"rel": EXECUTE_REL, "type": "application/json", "title": "execute",
             "href": f"{self.base}/processes/{p.id}/execution"}]}

    def execute(self, call: Call):
        from flask import Response

        request = call.request
        if request.mimetype != "application/json":
            raise UnsupportedMediaType(f"send the execute request as application/json, not "
                                       f"{request.mimetype or 'nothing'}")
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError as exc:
            raise InvalidQuery(f"the body is not JSON: {exc}", "body") from None
        if not isinstance(body, dict):
            raise InvalidQuery("the body must be an object with inputs", "body")
        response = body.get("response", "raw")
        if response not in ("raw", "document"):
            raise InvalidQuery(f"response must be raw or document, got {response!r}",
                               "response")
        process = self.processes[call.path["processId"]]
        context = Context(call.identity, self.catalog, self.store, call.visible)
        inputs = process.check(body.get("inputs", {}), context)
        job = self.jobs.submit(process.id, call.identity.who, call.identity.roles, inputs,
                               response)
        wait = "respond-async" not in request.headers.get("Prefer", "") \
            and self.waiting is not None and self.waiting.acquire(blocking=False)
        if wait:
            try:
                job = self._wait(job, call.identity.who)
            finally:
                self.waiting.release()
        status = 200 if job.done else 201
        self.audit.write(call.identity.who, _collections(inputs), f"POST {call.endpoint.path}",
                         status, call.request_id, job=job.id, process=process.id)
        if not job.done:
            resp = Response(json.dumps(self._status_info(job)), status=201,
                            mimetype="application/json")
            resp.headers["Location"] = f"{self.base}/jobs/{job.id}"
            resp.headers["Preference-Applied"] = "respond-async"
            return resp
        return self._results(job, call)

    def _wait(self, job: JobState, who: str) -> JobState:
        """The job once done, or as it stands after ``sync_seconds``. It is looked at
        less often the longer it runs (a tenth of the time waited so far): a look is a
        query and a turn of this process's interpreter lock, taken from the requests
        its other threads answer, and an answer comes at most a tenth late."""
        started = time.monotonic()
        while not job.done and (waited := time.monotonic() - started) < self.sync_seconds:
            time.sleep(min(max(waited / 10, POLL_SECONDS[0]), POLL_SECONDS[1]))
            job = self.jobs.get(job.id, who)
        return job

    # -- jobs ----------------------------------------------------------------------------
    def list_jobs(self, call: Call):
        limit, offset = call.query.get("limit", 100), call.query.get("offset", 0)
        jobs = self.jobs.of(call.identity.who, limit, offset)
        return {"jobs": [self._status_info(j) for j in jobs],
                "links": [{"rel": "self", "type": "application/json",
                           "href": f"{self.base}/jobs"}]}

    def status(self, call: Call):
        return self._status_info(self.jobs.get(call.path["jobId"], call.identity.who))

    def dismiss(self, call: Call):
        job = self.jobs.dismiss(call.path["jobId"], call.identity.who)
        self.audit.write(call.identity.who, _collections(job.inputs), "DELETE /jobs/{jobId}",
                         200, call.request_id, job=job.id, process=job.process)
        return self._status_info(job)

    def results(self, call: Call):
        return self._results(self.jobs.get(call.path["jobId"], call.identity.who), call)

    def _results(self, job: JobState, call: Call):
        from flask import Response

        if job.status == "failed":
            raise Unprocessable(f"job {job.id} failed: {job.message}")
        if job.status != "successful":
            raise NotFound(f"job {job.id} has no results ({job.status}: {job.message})")
        _, value = self.jobs.result(job.id, call.identity.who)
        if job.response == "document":
            output = next(iter(self.processes[job.process].module.DESCRIPTION["outputs"])) \
                if job.process in self.processes else "result"
            return self._linked(Response(json.dumps({output: value}),
                                         mimetype="application/json"), job)
        kind = "application/geo+json" if isinstance(value, dict) and value.get("type") \
            == "FeatureCollection" else "application/json"
        return self._linked(Response(json.dumps(value), mimetype=kind), job)

    def _linked(self, resp, job: JobState):
        """The answer as it was, its temporary collection (if any) in a Link header."""
        for link in self.collections.links(job):
            resp.headers.add("Link", f'<{link["href"]}>; rel="{link["rel"]}"; '
                                     f'type="{link["type"]}"')
        return resp

    def _status_info(self, job: JobState) -> dict:
        url = f"{self.base}/jobs/{job.id}"
        links = [{"rel": "self", "type": "application/json", "href": url}]
        if job.status == "successful":
            links.append({"rel": RESULTS_REL, "type": "application/json",
                          "href": f"{url}/results"})
            links += self.collections.links(job)
        return {"jobID": job.id, "processID": job.process, "type": "process",
                "status": job.status, "message": job.message, "progress": job.progress,
                "created": iso(job.created), "started": iso(job.started),
                "finished": iso(job.finished) if job.status in DONE else None,
                "updated": iso(job.updated), "links": links}


def landing_links(doc: dict, base_url: str) -> dict:
    """The landing page's links to the processes and the caller's jobs (pygeoapi's own
    point at what it would run itself: dropped)."""
    own = (f"{base_url}/processes", f"{base_url}/jobs")
    doc["links"] = [link for link in doc.get("links", []) if link.get("rel") not in
                    (PROCESSES_REL, JOBS_REL) and link.get("href") not in own] + [
        {"rel": PROCESSES_REL, "type": "application/json", "title": "Processes",
         "href": own[0]},
        {"rel": JOBS_REL, "type": "application/json", "title": "Your jobs", "href": own[1]}]
    return doc


def _collections(inputs: dict) -> str:
    return ",".join(sorted(str(v) for k, v in inputs.items()
                           if k in ("collection", "areas"))) or "-"


_PROBLEMS = {code: {"$ref": f"#/components/responses/{code}"} for code in ("401", "403")}
