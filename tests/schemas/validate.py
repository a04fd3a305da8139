"""Validates JSON documents (NDJSON, one a line) against a JSON Schema 2020-12 file of the repo.

Used for trailgate's own published shapes (schemas/lifecycle-event.schema.json). The schema is
checked against the 2020-12 meta-schema first. Every line is checked; each failure is printed
with the line number and the path of the offending value; the exit status is 1 if any fails.
jsonschema comes from .venv-ocsf (requirements/ocsf.txt).

Usage: python tests/schemas/validate.py SCHEMA.json FILE.ndjson
"""

import json
import sys

from jsonschema import Draft202012Validator


def main() -> int:
    schema_path, path = sys.argv[1], sys.argv[2]
    with open(schema_path, encoding="utf-8") as file:
        schema = json.load(file)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    failures = 0
    lines = 0
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            lines += 1
            for error in validator.iter_errors(json.loads(line)):
                failures += 1
                where = "/".join(str(part) for part in error.absolute_path) or "(document)"
                print(f"line {number}: {where}: {error.message}")
    print(json.dumps({"lines": lines, "failures": failures}))
    return 1 if failures or not lines else 0


if __name__ == "__main__":
    sys.exit(main())
