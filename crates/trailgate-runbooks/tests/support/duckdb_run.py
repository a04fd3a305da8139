"""Runs SQL on DuckDB for the runbook SQL proof (tests/sql_duckdb.rs) and the benchmark.

Reads one JSON request on stdin:
    {"setup": ["CREATE VIEW ...", ...], "queries": [{"id": "...", "sql": "..."}, ...],
     "read": "trino"}
and writes one JSON answer on stdout:
    {"duckdb": "<version>", "results": {"<id>": {"columns": [...], "rows": [[...]], "seconds": 0.01}},
     "errors": {"<id>": "<message>"}}
A failing query is reported under "errors" and does not stop the others; a failing setup
statement is fatal (exit status 2) because nothing after it would mean anything.

With "read": "trino", each query is first parsed as Trino and transpiled to DuckDB by sqlglot
(pinned beside DuckDB) with the few Trino functions it leaves untranslated added by
trino_on_duckdb.py: the Athena SQL is executed, not only parsed. A query that does not parse,
or transpiles to something DuckDB rejects, is an error that carries the DuckDB text.
"""

import json
import sys
import time

import duckdb


def plain(value):
    # Keep JSON-native types; anything else (timestamps, decimals) as text.
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def main():
    request = json.load(sys.stdin)
    threads = request.get("threads")
    connection = duckdb.connect()
    if threads:
        connection.execute(f"SET threads = {int(threads)}")
    for statement in request.get("setup", []):
        try:
            connection.execute(statement)
        except Exception as error:  # noqa: BLE001 - any DuckDB error ends the run
            print(f"setup failed: {error}\n{statement[:2000]}", file=sys.stderr)
            sys.exit(2)
    read = request.get("read")
    if read is not None and read != "trino":
        print(f"unsupported read dialect {read!r}", file=sys.stderr)
        sys.exit(2)
    if read:
        import trino_on_duckdb

        trino_on_duckdb.install(connection)
    results, errors = {}, {}
    for query in request.get("queries", []):
        started = time.perf_counter()
        sql = query["sql"]
        try:
            if read:
                sql = trino_on_duckdb.transpile(sql)
            cursor = connection.execute(sql)
            rows = cursor.fetchall()
            columns = [description[0] for description in cursor.description]
        except Exception as error:  # noqa: BLE001 - reported per query
            errors[query["id"]] = f"{error}\n    as DuckDB: {sql}" if read else str(error)
            continue
        results[query["id"]] = {
            "columns": columns,
            "rows": [[plain(value) for value in row] for row in rows],
            "seconds": time.perf_counter() - started,
        }
    json.dump({"duckdb": duckdb.__version__, "results": results, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
