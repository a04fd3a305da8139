"""Parses SQL as Trino (Athena's engine) with sqlglot for the Athena check of tests/sql_duckdb.rs.

Reads one JSON request on stdin:
    {"queries": [{"id": "...", "sql": "...", "read": "trino", "kind": "create"}, ...]}
("read" defaults to trino; "kind": "create" also checks the statement is the projected
CREATE TABLE of trailgate_runbooks::athena.)
and writes one JSON answer on stdout:
    {"sqlglot": "<version>", "parsed": <count>, "errors": {"<id>": "<message>"}}
A query that does not parse as exactly one Trino statement is an error.
"""

import json
import sys

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError


def check_create_table(statement):
    """An external table partitioned by account, region and day, with projection properties."""
    if not isinstance(statement, exp.Create) or statement.args.get("kind") != "TABLE":
        raise ParseError(f"not a CREATE TABLE: {type(statement).__name__}")
    properties = statement.args.get("properties")
    names = set()
    partitioned = []
    for prop in properties.expressions if properties else []:
        if isinstance(prop, exp.PartitionedByProperty):
            partitioned = [column.name for column in prop.this.expressions]
        elif isinstance(prop, exp.Property):
            names.add(prop.name)
    if partitioned != ["account", "region", "day"]:
        raise ParseError(f"partitioned by {partitioned}")
    for wanted in ("projection.enabled", "storage.location.template", "projection.day.range"):
        if wanted not in names:
            raise ParseError(f"no {wanted} property (has {sorted(names)})")


def main():
    request = json.load(sys.stdin)
    parsed, errors = 0, {}
    for query in request.get("queries", []):
        try:
            read = query.get("read", "trino")
            statements = sqlglot.parse(query["sql"], read=read, error_level=ErrorLevel.RAISE)
            if len([s for s in statements if s is not None]) != 1:
                raise ParseError(f"{len(statements)} statements, expected 1")
            if query.get("kind") == "create":
                check_create_table(statements[0])
            parsed += 1
        except Exception as error:  # noqa: BLE001 - every failure is the test's to report
            errors[query["id"]] = str(error)[:2000]
    json.dump({"sqlglot": sqlglot.__version__, "parsed": parsed, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
