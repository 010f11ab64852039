"""A process for the job tests: it waits the seconds asked, reporting its progress as it
goes (a job long enough to be dismissed, or to lose its worker, while it runs).
Registered by the tests' processes file, as any process is."""
from __future__ import annotations

import time

from oup.processes import features_output

DESCRIPTION = {
    "title": "Wait",
    "description": "Waits, reporting progress; answers an empty FeatureCollection.",
    "inputs": {"seconds": {"title": "how long", "schema": {"type": "number", "minimum": 0,
                                                           "maximum": 60}}},
    "outputs": {"result": features_output("nothing")},
}


def execute(inputs: dict, context) -> dict:
    started = time.monotonic()
    while (done := time.monotonic() - started) < inputs["seconds"]:
        context.progress(100 * done / inputs["seconds"], f"{done:.1f} s waited")
        time.sleep(0.05)
    return {"type": "FeatureCollection", "features": []}
