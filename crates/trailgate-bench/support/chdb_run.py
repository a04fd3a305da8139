"""Runs ClickHouse SQL in-process with chdb for the runbook benchmark (crates/trailgate-bench).

Reads one JSON request on stdin:
    {"queries": [{"id": "...", "sql": "..."}, ...]}
and writes one JSON answer on stdout:
    {"chdb": "<version>", "clickhouse": "<version>",
     "results": {"<id>": {"rows": [[...]], "seconds": 1.2}}, "errors": {"<id>": "<message>"}}
Rows are ClickHouse's JSONCompact rows; a failing query is reported under "errors".
"""

import json
import sys
import time

import chdb


def main():
    request = json.load(sys.stdin)
    results, errors = {}, {}
    for query in request.get("queries", []):
        started = time.perf_counter()
        try:
            answer = chdb.query(query["sql"], "JSONCompact")
            rows = json.loads(answer.bytes())["data"] if answer.bytes() else []
        except Exception as error:  # noqa: BLE001 - reported per query
            errors[query["id"]] = str(error)[:2000]
            continue
        results[query["id"]] = {"rows": rows, "seconds": time.perf_counter() - started}
    version = chdb.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
    json.dump(
        {"chdb": chdb.__version__, "clickhouse": version, "results": results, "errors": errors},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
