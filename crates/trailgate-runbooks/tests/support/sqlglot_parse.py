"""Parses SQL as Trino (Athena's engine) with sqlglot for the Athena check of tests/sql_duckdb.rs.

Reads one JSON request on stdin:
    {"queries": [{"id": "...", "sql": "..."}, ...]}
and writes one JSON answer on stdout:
    {"sqlglot": "<version>", "parsed": <count>, "errors": {"<id>": "<message>"}}
A query that does not parse as exactly one Trino statement is an error.
"""

import json
import sys

import sqlglot
from sqlglot.errors import ErrorLevel, ParseError


def main():
    request = json.load(sys.stdin)
    parsed, errors = 0, {}
    for query in request.get("queries", []):
        try:
            statements = sqlglot.parse(query["sql"], read="trino", error_level=ErrorLevel.RAISE)
            if len([s for s in statements if s is not None]) != 1:
                raise ParseError(f"{len(statements)} statements, expected 1")
            parsed += 1
        except Exception as error:  # noqa: BLE001 - every failure is the test's to report
            errors[query["id"]] = str(error)[:2000]
    json.dump({"sqlglot": sqlglot.__version__, "parsed": parsed, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
