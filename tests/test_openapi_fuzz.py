"""A bounded schemathesis run against /openapi.json: no 5xx, and every response as the
document says (status, content type, schema).

On the GeoPackage, every phase: the coverage phase tries each declared parameter's edges
(about 13,000 cases, three quarters of the run). On PostGIS, the fuzzing phase only: most
edge cases end at the routes' checks, the same code for both stores, and the random cases
still reach PostGIS's own answers to odd values (a number too big for its column, say)."""
import shutil
import subprocess
import sys
from pathlib import Path


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(imported, server,
                                                                       tmp_path):
    phases = "examples,coverage,fuzzing" if imported["OUP_TEST_STORE"] == "gpkg" else "fuzzing"
    st = Path(sys.executable).with_name("schemathesis")
    cmd = [str(st) if st.exists() else shutil.which("schemathesis"), "run",
           f"{server}/openapi.json",
           "--checks", "not_a_server_error,response_schema_conformance,"
                       "status_code_conformance,content_type_conformance",
           "--max-examples", "10", "--phases", phases,
           "--workers", "2", "--request-timeout", "20", "--generation-deterministic",
           # event streams never end by themselves (tests/test_event_delivery.py has them)
           "--exclude-path-regex", "/events$"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    summary = res.stdout[-3000:]
    assert res.returncode == 0, summary
    assert " passed" in summary and "generated" in summary
