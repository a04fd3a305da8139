"""Validates OCSF events (NDJSON, one event a line) against the pinned OCSF JSON schema.

The schema is OCSF's own, as packaged by the pinned ocsf-json-schema (requirements/ocsf.txt),
turned into JSON Schema 2020-12 per class with the `cloud` profile, which trailgate's events
use. Every line is checked; each failure is printed with the line number and the path of the
offending value, and the exit status is 1 if any line fails.

Usage: python tests/ocsf/validate.py VERSION FILE.ndjson
"""

import json
import sys

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema


def main() -> int:
    version, path = sys.argv[1], sys.argv[2]
    ocsf = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
    validators = {}
    failures = 0
    lines = 0
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            lines += 1
            event = json.loads(line)
            class_uid = event.get("class_uid")
            if class_uid not in validators:
                name = ocsf.lookup_class_name_from_uid(class_uid=class_uid)
                schema = ocsf.get_class_schema(class_name=name, profiles=["cloud"])
                Draft202012Validator.check_schema(schema)
                validators[class_uid] = Draft202012Validator(schema)
            for error in validators[class_uid].iter_errors(event):
                failures += 1
                where = "/".join(str(part) for part in error.absolute_path) or "(event)"
                print(f"line {number}: {where}: {error.message}")
    print(json.dumps({"lines": lines, "failures": failures, "classes": sorted(validators)}))
    return 1 if failures or not lines else 0


if __name__ == "__main__":
    sys.exit(main())
