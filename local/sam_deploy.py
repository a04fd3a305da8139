"""Deploys a SAM template the way `sam deploy` does, into moto, and prints what was deployed.

1. The template's transforms run offline: AWS::LanguageExtensions with SAM CLI's own processor
   (samcli.lib.cfn_language_extensions, Fn::ForEach), then AWS::Serverless-2016-10-31 with the
   pinned aws-sam-translator, the library `sam` uses.
2. Packaging, as `sam package` does it: every function's CodeUri and every state machine's
   DefinitionUri become objects in a code bucket. The function zips are placeholders (the
   functions run under `cargo lambda watch`, which the router invokes); the ASL files are the
   repository's own, so the state machine is the one CloudFormation creates from
   DefinitionS3Location + DefinitionSubstitutions.
3. CreateStack on moto's CloudFormation (local/moto_server.py fills the few types moto lacks),
   then DescribeStacks and ListStackResources, the way a user's scripts read a stack.

Prints one JSON document on stdout (the manifest the Rust supervisor reads): the stack's
outputs and resources, the template's logical ids and types, and for the local emulation the
functions (deployed name, binary, environment as Lambda holds it), the API's routes and the
schedules and stream mappings, all read back from the deployed services rather than from the
template.

Usage: .venv-sam/bin/python local/sam_deploy.py --template T --stack-name N --endpoint URL
       [--parameters FILE.json] [--transformed-out FILE.json]
Credentials and Region come from the environment (a member stack deploys with the keys of a
role assumed in its account). Errors go to stderr as one line each; the exit status is 1.
"""

import argparse
import io
import json
import os
import re
import sys
import time
import zipfile

import boto3
from botocore.config import Config
from samtranslator.yaml_helper import yaml_parse

# One code bucket per account, as SAM CLI's managed bucket is (bucket names are global).
CODE_BUCKET = "trailgate-local-code-{account_id}"
REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class Failure(Exception):
    pass


class NoManagedPolicies:
    """The translator asks IAM for AWS managed policy ARNs by name only when a function names
    one without its ARN; trailgate's templates use ARNs or none, so there is nothing to load."""

    def load(self):
        return {}


def binary_of(logical_id, resource):
    """The cargo binary a function runs: `Metadata.BuildProperties.Binary`, as cargo-lambda's
    SAM build reads it, else the crate folder at the end of CodeUri."""
    binary = (resource.get("Metadata") or {}).get("BuildProperties", {}).get("Binary")
    if binary:
        return binary
    code_uri = str(resource.get("Properties", {}).get("CodeUri", "")).rstrip("/")
    folder = code_uri.removesuffix("/Cargo.toml").rsplit("/", 1)[-1]
    if folder in ("", ".") or folder.endswith(".toml"):
        raise Failure(f"function {logical_id} names no binary: set Metadata.BuildProperties.Binary")
    return folder


def placeholder_zip(binary):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "bootstrap",
            f"#!/bin/sh\necho '{binary} runs under cargo lambda watch on the local stack' >&2\nexit 1\n",
        )
    return buffer.getvalue()


def package(template, template_dir, s3, bucket, stack_name):
    """Uploads code and definitions; returns logical id -> binary of every function."""
    binaries = {}
    globals_function = (template.get("Globals") or {}).get("Function") or {}
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        properties = resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function":
            merged = {"Metadata": resource.get("Metadata"), "Properties": {**globals_function, **properties}}
            binary = binary_of(logical_id, merged)
            binaries[logical_id] = binary
            key = f"{stack_name}/{binary}.zip"
            s3.put_object(Bucket=bucket, Key=key, Body=placeholder_zip(binary))
            properties["CodeUri"] = f"s3://{bucket}/{key}"
        elif kind == "AWS::Serverless::StateMachine" and isinstance(properties.get("DefinitionUri"), str):
            path = os.path.join(template_dir, properties["DefinitionUri"])
            key = f"{stack_name}/{os.path.basename(path)}"
            with open(path, "rb") as definition:
                s3.put_object(Bucket=bucket, Key=key, Body=definition.read())
            properties["DefinitionUri"] = {"Bucket": bucket, "Key": key}
    return binaries


def language_extensions(template, parameters, account_id, stack_name):
    """AWS::LanguageExtensions, which CloudFormation runs before the SAM transform."""
    transforms = template.get("Transform") or []
    transforms = [transforms] if isinstance(transforms, str) else list(transforms)
    if "AWS::LanguageExtensions" not in transforms:
        return template
    # Imported only when used: SAM CLI's modules take most of a member stack's deploy time.
    from samcli.lib.cfn_language_extensions.api import create_default_intrinsic_resolver
    from samcli.lib.cfn_language_extensions.models import PseudoParameterValues, TemplateProcessingContext
    from samcli.lib.cfn_language_extensions.pipeline import ProcessingPipeline
    from samcli.lib.cfn_language_extensions.processors import ForEachProcessor, TemplateParsingProcessor

    declared = template.get("Parameters", {})
    values = {}
    for name, value in parameters.items():
        kind = declared.get(name, {}).get("Type", "String")
        values[name] = [v.strip() for v in value.split(",")] if "List" in kind else value
    context = TemplateProcessingContext(
        fragment=template,
        parameter_values=values,
        pseudo_parameters=PseudoParameterValues(region=REGION, account_id=account_id, stack_name=stack_name),
    )
    # Only the loop expansion (its collections resolved from the parameters): SAM CLI's default
    # pipeline also resolves every other intrinsic it can, partially, and in PARTIAL mode turns
    # `!Join` over `!GetAtt`s into a Python repr; CloudFormation leaves those to the deploy.
    resolver = create_default_intrinsic_resolver(context)
    pipeline = ProcessingPipeline([TemplateParsingProcessor(), ForEachProcessor(intrinsic_resolver=resolver)])
    template = pipeline.process_template(context)
    transforms.remove("AWS::LanguageExtensions")
    if transforms:
        template["Transform"] = transforms[0] if len(transforms) == 1 else transforms
    else:
        template.pop("Transform", None)
    return template


def serverless(template, parameters):
    """AWS::Serverless-2016-10-31, with the translator `sam` itself runs."""
    if not template.get("Transform"):
        return template
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    try:
        return transform(template, parameters, NoManagedPolicies())
    except InvalidDocumentException as error:
        raise Failure("; ".join(cause.message for cause in error.causes)) from error


def deploy(args):
    session = boto3.session.Session(region_name=REGION)
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})

    def client(name):
        return session.client(name, endpoint_url=args.endpoint, config=config)

    account_id = client("sts").get_caller_identity()["Account"]
    parameters = {}
    if args.parameters:
        with open(args.parameters) as f:
            parameters = {k: str(v) for k, v in json.load(f).items()}
    with open(args.template) as f:
        template = yaml_parse(f.read())
    declared = template.get("Parameters", {})
    parameters = {k: v for k, v in parameters.items() if k in declared}

    s3 = client("s3")
    bucket = CODE_BUCKET.format(account_id=account_id)
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    template = language_extensions(template, parameters, account_id, args.stack_name)
    binaries = package(template, os.path.dirname(os.path.abspath(args.template)), s3, bucket, args.stack_name)
    cfn_template = serverless(template, parameters)
    if args.transformed_out:
        with open(args.transformed_out, "w") as f:
            json.dump(cfn_template, f, indent=1)

    cfn = client("cloudformation")
    started = time.monotonic()
    try:
        cfn.create_stack(
            StackName=args.stack_name,
            TemplateBody=json.dumps(cfn_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except cfn.exceptions.ClientError as error:
        raise Failure(f"CreateStack: {error}") from error
    stack = cfn.describe_stacks(StackName=args.stack_name)["Stacks"][0]
    while stack["StackStatus"].endswith("_IN_PROGRESS"):
        time.sleep(0.1)
        stack = cfn.describe_stacks(StackName=args.stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        failed = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in cfn.describe_stack_events(StackName=args.stack_name)["StackEvents"]
            if e["ResourceStatus"].endswith("FAILED")
        ]
        raise Failure(f"stack {stack['StackStatus']}: {stack.get('StackStatusReason')} {failed}")
    seconds = time.monotonic() - started

    resources = []
    paginator = cfn.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=args.stack_name):
        for r in page["StackResourceSummaries"]:
            resources.append(
                {
                    "logical_id": r["LogicalResourceId"],
                    "type": r["ResourceType"],
                    "physical_id": r.get("PhysicalResourceId") or "",
                }
            )
    physical = {r["logical_id"]: r["physical_id"] for r in resources}
    manifest = {
        "stack_id": stack["StackId"],
        "stack_name": args.stack_name,
        "account_id": account_id,
        "create_seconds": round(seconds, 3),
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "resources": resources,
        "template_resources": {k: v["Type"] for k, v in cfn_template["Resources"].items()},
        "functions": functions(client("lambda"), binaries, physical),
        "routes": [],
        "api_id": "",
        "schedules": schedules(client("events"), physical, cfn_template),
        "streams": streams(client("lambda")),
    }
    for logical_id, kind in manifest["template_resources"].items():
        if kind == "AWS::ApiGateway::RestApi" and physical.get(logical_id):
            manifest["api_id"] = physical[logical_id]
            manifest["routes"] = routes(client("apigateway"), physical[logical_id])
    return manifest


def functions(lam, binaries, physical):
    # One listing rather than a call per function: it carries each configuration in full.
    configurations = {}
    for page in lam.get_paginator("list_functions").paginate():
        configurations.update({c["FunctionName"]: c for c in page["Functions"]})
    out = []
    for logical_id, binary in sorted(binaries.items()):
        conf = configurations.get(physical.get(logical_id))
        if conf is None:
            raise Failure(f"function {logical_id} was not created")
        out.append(
            {
                "logical_id": logical_id,
                "name": conf["FunctionName"],
                "arn": conf["FunctionArn"],
                "binary": binary,
                "environment": {k: str(v) for k, v in ((conf.get("Environment") or {}).get("Variables") or {}).items()},
            }
        )
    return out


LAMBDA_URI = re.compile(r"arn:[^:]+:apigateway:[^:]+:lambda:path/[^/]+/functions/(?P<arn>.+)/invocations$")


def routes(apigateway, api_id):
    out = []
    # `embed=methods` carries each method's authorization and integration: no call per method.
    for page in apigateway.get_paginator("get_resources").paginate(restApiId=api_id, embed=["methods"]):
        for resource in page["items"]:
            for method, detail in (resource.get("resourceMethods") or {}).items():
                uri = (detail.get("methodIntegration") or {}).get("uri", "")
                match = LAMBDA_URI.match(uri)
                if not match:
                    raise Failure(f"route {method} {resource['path']} has no Lambda proxy integration")
                out.append(
                    {
                        "method": method,
                        "path": resource["path"],
                        "function_arn": match.group("arn"),
                        "iam_auth": detail.get("authorizationType") == "AWS_IAM",
                    }
                )
    return sorted(out, key=lambda r: (r["path"], r["method"]))


def schedules(events, physical, cfn_template):
    out = []
    for logical_id, resource in cfn_template["Resources"].items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        rule = events.describe_rule(Name=physical[logical_id])
        if "ScheduleExpression" not in rule:
            continue
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            out.append(
                {"rule": rule["Name"], "expression": rule["ScheduleExpression"], "target_arn": target["Arn"], "input": target.get("Input")}
            )
    return out


def streams(lam):
    # The DynamoDB stream mappings, as Lambda holds them: the router polls each stream and
    # invokes the function as the Lambda service would.
    out = []
    for page in lam.get_paginator("list_event_source_mappings").paginate():
        for mapping in page["EventSourceMappings"]:
            if ":dynamodb:" not in mapping["EventSourceArn"]:
                continue
            out.append(
                {
                    "function_arn": mapping["FunctionArn"],
                    "stream_arn": mapping["EventSourceArn"],
                    "batch_size": mapping.get("BatchSize") or 100,
                    "maximum_retry_attempts": mapping.get("MaximumRetryAttempts", -1),
                    "report_batch_item_failures": "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or []),
                }
            )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", required=True)
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--parameters")
    parser.add_argument("--transformed-out")
    args = parser.parse_args()
    try:
        manifest = deploy(args)
    except Failure as error:
        print(f"sam_deploy: {error}", file=sys.stderr)
        return 1
    json.dump(manifest, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
