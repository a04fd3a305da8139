"""Athena (Trino) SQL executed on DuckDB: sqlglot's transpiler plus the Trino functions it leaves
untranslated, for the Athena proof of tests/sql_duckdb.rs (see duckdb_run.py).

sqlglot parses every query as Trino and writes it as DuckDB. Three Trino functions the compiler
uses have no DuckDB translation in sqlglot, so they are rewritten here, each from Trino's
documented semantics (not from the engine, which is what the results are compared with):

- ``json_query(json, 'lax <path>' WITH ARRAY WRAPPER)``: SQL/JSON path in lax mode. sqlglot
  turns it into DuckDB's ``->``, which has no lax mode; here it is a DuckDB function backed by
  :func:`lax_json_query`, a small evaluator of the member (``."name"``) and wildcard
  (``[*]``) steps the compiler writes. Any other path syntax is an error, not a guess.
- ``any_match(array, x -> predicate)``: true if the predicate is true for some element, else NULL
  if it is NULL for some element, else false (NULL for a NULL array). Written as
  ``tg_any_match(list_transform(array, x -> predicate))`` with a macro of that truth table.
- ``format_datetime(timestamp, '<Joda pattern>')``: DuckDB's ``strftime`` with the pattern
  converted token by token; a token not in the table is an error.

Everything else (``try``, ``from_iso8601_timestamp``, ``count_if``, ``filter``, ``transform``,
``element_at``, ``json_parse``, ``json_format``, ``json_extract_scalar``, ``regexp_like``,
``starts_with``, ``reverse``, ``cardinality``, ``array_join``, casts to ``array(json)``) is
sqlglot's own translation.
"""

import functools
import json
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

MACROS = [
    "CREATE OR REPLACE MACRO tg_any_match(tg_matches) AS CASE "
    "WHEN tg_matches IS NULL THEN NULL "
    "WHEN len(list_filter(tg_matches, lambda tg_m: tg_m)) > 0 THEN TRUE "
    "WHEN len(list_filter(tg_matches, lambda tg_m: tg_m IS NULL)) > 0 THEN NULL "
    "ELSE FALSE END",
]

_STEP = re.compile(r'\."((?:[^"\\]|\\.)*)"|\[\*\]')


@functools.lru_cache(maxsize=64)
def _steps(path):
    if not path.startswith("lax $"):
        raise ValueError(f"not a lax-mode path: {path!r}")
    rest, steps, at = path[len("lax $") :], [], 0
    while at < len(rest):
        match = _STEP.match(rest, at)
        if match is None:
            raise ValueError(f"path step not supported at {rest[at:]!r} in {path!r}")
        steps.append(("member", match.group(1)) if match.group(1) is not None else ("all",))
        at = match.end()
    return tuple(steps)


@functools.lru_cache(maxsize=1 << 20)
def lax_json_query(text, path):
    """``json_query(text, path WITH ARRAY WRAPPER)`` in lax mode, NULL ON EMPTY and ON ERROR."""
    steps = _steps(path)
    if text is None:
        return None
    try:
        sequence = [json.loads(text)]
    except ValueError:
        return None
    for step in steps:
        found = []
        for item in sequence:
            if step[0] == "member":
                # Lax mode: a member step on an array applies to each element (one level);
                # a non-object has no members (a structural error, suppressed in lax mode).
                for target in item if isinstance(item, list) else [item]:
                    if isinstance(target, dict) and step[1] in target:
                        found.append(target[step[1]])
            elif isinstance(item, list):
                found.extend(item)
            else:
                # Lax mode: `[*]` on a non-array wraps it.
                found.append(item)
        sequence = found
    if not sequence:
        return None
    return json.dumps(sequence, separators=(",", ":"))


JODA = [
    ("''", "'"),
    ("yyyy", "%Y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
]


def joda_to_strftime(pattern):
    out, at = [], 0
    while at < len(pattern):
        if pattern[at] == "'":
            end = pattern.find("'", at + 1)
            if end < 0:
                raise ValueError(f"unterminated quote in {pattern!r}")
            out.append(pattern[at + 1 : end].replace("%", "%%") or "'")
            at = end + 1
            continue
        for token, directive in JODA:
            if pattern.startswith(token, at):
                out.append(directive)
                at += len(token)
                break
        else:
            if pattern[at].isalpha():
                raise ValueError(f"Joda token not supported at {pattern[at:]!r} in {pattern!r}")
            out.append(pattern[at])
            at += 1
    return "".join(out)


def _rewrite(node):
    # sqlglot's transform does not descend into a node it replaced: arguments are rewritten here.
    if isinstance(node, exp.JSONExtract) and node.args.get("json_query"):
        option = node.args.get("option")
        if option is None or option.name.upper() != "WITH ARRAY WRAPPER":
            raise ValueError(f"json_query without WITH ARRAY WRAPPER: {node.sql('trino')}")
        return exp.Anonymous(
            this="tg_json_query", expressions=[_inner(node.this), _inner(node.expression)]
        )
    if isinstance(node, exp.Anonymous) and node.name.lower() == "any_match":
        array, predicate = (_inner(argument) for argument in node.expressions)
        return exp.Anonymous(
            this="tg_any_match",
            expressions=[exp.Anonymous(this="list_transform", expressions=[array, predicate])],
        )
    if isinstance(node, exp.Anonymous) and node.name.lower() == "format_datetime":
        value, pattern = (_inner(argument) for argument in node.expressions)
        if not pattern.is_string:
            raise ValueError("format_datetime with a non-literal pattern")
        return exp.Anonymous(
            this="strftime", expressions=[value, exp.Literal.string(joda_to_strftime(pattern.this))]
        )
    return node


def _inner(node):
    return node.transform(_rewrite)


def install(connection):
    """Adds the DuckDB side of the rewritten functions to `connection`."""
    connection.create_function(
        "tg_json_query",
        lax_json_query,
        ["VARCHAR", "VARCHAR"],
        "VARCHAR",
        null_handling="special",
    )
    # Athena sessions are in UTC; `timestamp with time zone` values are compared and printed so.
    connection.execute("SET TimeZone = 'UTC'")
    for statement in MACROS:
        connection.execute(statement)


def transpile(sql):
    """One Trino statement as DuckDB SQL."""
    statements = sqlglot.parse(sql, read="trino", error_level=ErrorLevel.RAISE)
    if len(statements) != 1 or statements[0] is None:
        raise ValueError(f"{len(statements)} statements")
    return statements[0].transform(_rewrite).sql("duckdb")
