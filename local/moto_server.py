"""moto server with the CloudFormation coverage trailgate's templates need.

moto's CloudFormation engine creates most of the transformed template itself. For some
resource types it has no model and skips the resource while still reporting CREATE_COMPLETE;
for others it ignores properties the templates depend on, or gives no physical id. This module
fills exactly those, each through moto's own service backend (so the resource is the one the
API then serves), and starts the server unchanged otherwise.

No model:
  AWS::SecretsManager::Secret          Name, Description, KmsKeyId, SecretString,
                                       GenerateSecretString; Ref = ARN
  AWS::SecretsManager::ResourcePolicy  PutResourcePolicy on SecretId
  AWS::SNS::Subscription               Subscribe, FilterPolicyScope, FilterPolicy,
                                       RawMessageDelivery
  AWS::SNS::TopicPolicy                the Policy attribute of every topic in Topics
  AWS::S3::BucketPolicy                PutBucketPolicy
  AWS::ApiGateway::Stage               CreateStage; Ref = stage name
  AWS::Events::EventBusPolicy          PutPermission with the Statement as a policy
Properties ignored:
  AWS::ApiGateway::RestApi             Body (SAM's whole API: title, paths, methods with the
                                       SigV4 security scheme as AWS_IAM, Lambda proxy
                                       integrations), and Name required even with a Body
  AWS::StepFunctions::StateMachine     DefinitionS3Location, DefinitionSubstitutions (SAM's
                                       DefinitionUri becomes both); and moto's model creates it
                                       in a backend the API no longer serves once the
                                       interpreter is on
  AWS::IAM::Role                       ManagedPolicyArns (an AWS managed policy is added to the
                                       account from moto's bundled copy when a role attaches it;
                                       loading all 1,582 makes /moto-api/data.json, which the
                                       outbox reads, take seconds)
  AWS::S3::Bucket                      VersioningConfiguration, ObjectLockEnabled with
                                       ObjectLockConfiguration, PublicAccessBlockConfiguration,
                                       OwnershipControls (only BucketEncryption, Tags applied)
  AWS::DynamoDB::Table                 ResourcePolicy, TimeToLiveSpecification
  AWS::Events::EventBus                Name (moto names the bus after its logical id)
No physical id:
  AWS::ApiGateway::Deployment          (so Ref and ListStackResources give none)
  AWS::Lambda::Permission

Three fixes outside CloudFormation:
  - moto's DynamoDB hands each stream record to the mapped function inside the write itself,
    through its own Lambda (Docker): the write is done and nothing is handed over, as on AWS,
    where the Lambda service polls the stream; the local stack's router polls it the same way
    (router/streams.rs).
  - moto's S3 applies a bucket policy's Deny statements to every caller and ignores their
    Condition, so a Deny meant for everyone but one role denies that role too: the object
    check leaves out statements with a Condition, which moto cannot evaluate (the IAM
    evaluator of tests/tests/iam_eval.rs judges them).
  - /moto-api/data.json (the router's outbox reads it) fails once a Lambda function exists on a
    machine without Docker, because it reads every property and `docker_client` connects to
    Docker: the property raises AttributeError instead, which the dump skips.

Usage: .venv/bin/python local/moto_server.py [moto_server arguments].
tests/tests/cloudformation.rs deploys the transformed templates and fails on any resource left
without a physical id, so a type missing here (or a moto upgrade that changes one) is caught.
"""

import functools
import json
import sys

from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel


# moto files every model class under the second part of its module name (moto.<service>...).
MODULE = "trailgate.cloudformation_shim"


def _backend(backends, account_id, region_name):
    return backends[account_id][region_name]


class _Created(CloudFormationModel):
    """A resource created through a backend call; remembers its physical id."""
    __module__ = MODULE

    def __init__(self, physical_resource_id, attributes=None):
        self._physical = physical_resource_id
        self._attributes = attributes or {}

    @property
    def physical_resource_id(self):
        return self._physical

    @classmethod
    def has_cfn_attr(cls, attr):
        return True

    def get_cfn_attribute(self, attribute_name):
        if attribute_name in self._attributes:
            return self._attributes[attribute_name]
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        pass


class Secret(_Created):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.secretsmanager.models import secretsmanager_backends

        backend = _backend(secretsmanager_backends, account_id, region_name)
        p = cloudformation_json.get("Properties", {})
        value = p.get("SecretString")
        generate = p.get("GenerateSecretString")
        if value is None and generate is not None:
            password = backend.get_random_password(
                password_length=int(generate.get("PasswordLength", 32)),
                exclude_characters=generate.get("ExcludeCharacters", ""),
                exclude_numbers=_flag(generate, "ExcludeNumbers"),
                exclude_punctuation=_flag(generate, "ExcludePunctuation"),
                exclude_uppercase=_flag(generate, "ExcludeUppercase"),
                exclude_lowercase=_flag(generate, "ExcludeLowercase"),
                include_space=_flag(generate, "IncludeSpace"),
                require_each_included_type=_flag(generate, "RequireEachIncludedType", True),
            )
            password = json.loads(password)["RandomPassword"]
            key = generate.get("GenerateStringKey")
            template = generate.get("SecretStringTemplate")
            if key and template:
                document = json.loads(template)
                document[key] = password
                value = json.dumps(document)
            else:
                value = password
        arn = backend.create_secret(
            name=resource_name,
            secret_string=value,
            secret_binary=None,
            description=p.get("Description"),
            tags=p.get("Tags"),
            kms_key_id=p.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        if isinstance(arn, str) and arn.startswith("{"):
            arn = json.loads(arn)["ARN"]
        return cls(arn, {"Id": arn})


def _flag(spec, name, default=False):
    value = spec.get(name, default)
    return value if isinstance(value, bool) else str(value).lower() == "true"


class SecretResourcePolicy(_Created):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::ResourcePolicy"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.secretsmanager.models import secretsmanager_backends

        p = cloudformation_json["Properties"]
        policy = p["ResourcePolicy"]
        arn, _ = _backend(secretsmanager_backends, account_id, region_name).put_resource_policy(
            p["SecretId"], policy if isinstance(policy, str) else json.dumps(policy)
        )
        return cls(arn)


class Subscription(_Created):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type():
        return "AWS::SNS::Subscription"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.sns.models import sns_backends

        backend = _backend(sns_backends, account_id, region_name)
        p = cloudformation_json["Properties"]
        subscription = backend.subscribe(p["TopicArn"], p["Endpoint"], p["Protocol"])
        # Scope before policy: SetSubscriptionAttributes checks the policy against the scope.
        for name in ("FilterPolicyScope", "FilterPolicy", "RawMessageDelivery"):
            if name in p:
                value = p[name]
                if not isinstance(value, str):
                    value = json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower()
                backend.set_subscription_attributes(subscription.arn, name, value)
        return cls(subscription.arn)


class TopicPolicy(_Created):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type():
        return "AWS::SNS::TopicPolicy"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.sns.models import sns_backends

        backend = _backend(sns_backends, account_id, region_name)
        p = cloudformation_json["Properties"]
        for topic in p["Topics"]:
            backend.set_topic_attribute(topic, "Policy", json.dumps(p["PolicyDocument"]))
        return cls(resource_name)


class BucketPolicy(_Created):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type():
        return "AWS::S3::BucketPolicy"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.s3.models import s3_backends

        p = cloudformation_json["Properties"]
        s3_backends[account_id]["aws"].put_bucket_policy(p["Bucket"], json.dumps(p["PolicyDocument"]).encode())
        return cls(resource_name)


class Stage(_Created):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGateway::Stage"

    @staticmethod
    def cloudformation_name_type():
        return "StageName"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.apigateway.models import apigateway_backends

        p = cloudformation_json["Properties"]
        name = p.get("StageName", resource_name)
        _backend(apigateway_backends, account_id, region_name).create_stage(
            function_id=p["RestApiId"],
            stage_name=name,
            deploymentId=p["DeploymentId"],
            variables=p.get("Variables"),
            description=p.get("Description", ""),
            tracing_enabled=p.get("TracingEnabled"),
        )
        return cls(name)


def _state_machine():
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.responses import get_backend
    from moto.stepfunctions.utils import cfn_to_api_tags

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        p = cloudformation_json["Properties"]
        definition = p.get("DefinitionString")
        location = p.get("DefinitionS3Location")
        if definition is None and location:
            from moto.s3.models import s3_backends

            key = s3_backends[account_id]["aws"].get_object(location["Bucket"], location["Key"])
            definition = key.value.decode()
        elif definition is None and isinstance(p.get("Definition"), dict):
            definition = json.dumps(p["Definition"])
        for name, value in (p.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${%s}" % name, str(value))
        # The backend the API serves: with the interpreter on, that is the parser's, not the one
        # moto's own model writes to (a state machine created there is invisible to the API).
        return get_backend(account_id, region_name).create_state_machine(
            p.get("StateMachineName", resource_name),
            definition,
            p.get("RoleArn", ""),
            tags=cfn_to_api_tags(p.get("Tags", [])),
            loggingConfiguration=_camel(p.get("LoggingConfiguration")),
            tracingConfiguration=_camel(p.get("TracingConfiguration")),
            sm_type=p.get("StateMachineType"),
        )

    StateMachine.create_from_cloudformation_json = classmethod(create)


def _camel(value):
    """CloudFormation's PascalCase property shapes as the API's camelCase."""
    if isinstance(value, dict):
        return {k[0].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _after_create(model, complete, before=None):
    """Wraps moto's `create_from_cloudformation_json` of `model`: `before(properties,
    resource_name)` may fill in what moto requires, and `complete(created, properties,
    account_id, region_name, resource_name)` applies what moto's model ignores."""
    original = model.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json.setdefault("Properties", {})
        if before is not None:
            before(properties, resource_name)
        created = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        complete(created, properties, account_id, region_name, resource_name)
        return created

    model.create_from_cloudformation_json = classmethod(create)


def _table():
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    def complete(table, p, account_id, region_name, _name):
        backend = dynamodb_backends[account_id][region_name]
        if "TimeToLiveSpecification" in p:
            spec = p["TimeToLiveSpecification"]
            backend.update_time_to_live(
                table.name,
                {"Enabled": _flag(spec, "Enabled"), "AttributeName": spec["AttributeName"]},
            )
        policy = (p.get("ResourcePolicy") or {}).get("PolicyDocument")
        if policy is not None:
            backend.put_resource_policy(table.table_arn, json.dumps(policy), None)

    _after_create(Table, complete)


def _role():
    from moto.iam.models import Role, iam_backends

    def complete(role, p, account_id, _region, _name):
        backend = iam_backends[account_id]["aws"]
        for arn in p.get("ManagedPolicyArns", []):
            _aws_managed_policy(backend, arn)
            backend.attach_role_policy(arn, role.name)

    _after_create(Role, complete)


@functools.cache
def _aws_managed_policies():
    """moto's bundled copy of AWS's managed policies, by name (a large document: parsed once)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)


def _aws_managed_policy(backend, arn):
    from moto.iam.models import AWSManagedPolicy

    if arn in backend.managed_policies or ":iam::aws:policy/" not in arn:
        return
    name = arn.rsplit("/", 1)[-1]
    data = _aws_managed_policies().get(name)
    if data is not None:
        policy = AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, data)
        backend.managed_policies[policy.arn] = policy


def _bucket():
    from moto.s3.models import FakeBucket, s3_backends

    def complete(bucket, p, account_id, _region, _name):
        backend = s3_backends[account_id]["aws"]
        if (p.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
            backend.put_bucket_versioning(bucket.name, "Enabled")
        if _flag(p, "ObjectLockEnabled"):
            retention = (p.get("ObjectLockConfiguration") or {}).get("Rule", {}).get("DefaultRetention", {})
            backend.put_object_lock_configuration(
                bucket.name,
                lock_enabled=True,
                mode=retention.get("Mode"),
                # Both numbers, as the API handler passes them: moto adds days and years.
                days=int(retention.get("Days", 0)),
                years=int(retention.get("Years", 0)),
            )
        if "PublicAccessBlockConfiguration" in p:
            backend.put_public_access_block(bucket.name, p["PublicAccessBlockConfiguration"])
        for rule in (p.get("OwnershipControls") or {}).get("Rules", []):
            backend.put_bucket_ownership_controls(bucket.name, rule["ObjectOwnership"])

    _after_create(FakeBucket, complete)


def _rest_api():
    """SAM puts the whole API in the RestApi's `Body` (Swagger 2.0), which moto's model ignores
    and its importer refuses (OpenAPI 3 only, no authorization types)."""
    from moto.apigateway.models import RestAPI, apigateway_backends

    def before(p, resource_name):
        if p.get("Body") and "Name" not in p:
            # CloudFormation takes the name from the definition when Body is given.
            p["Name"] = p["Body"].get("info", {}).get("title", resource_name)

    def complete(api, p, account_id, region_name, _name):
        if p.get("Body"):
            _import_body(apigateway_backends[account_id][region_name], api, p["Body"])

    _after_create(RestAPI, complete, before)


def _import_body(backend, api, body):
    schemes = body.get("securityDefinitions") or body.get("components", {}).get("securitySchemes", {})
    sigv4 = {name for name, s in schemes.items() if s.get("x-amazon-apigateway-authtype") == "awsSigv4"}
    default_security = body.get("security", [])
    for path, methods in sorted(body.get("paths", {}).items()):
        parent = api.get_resource_for_path("/")
        walked = ""
        for part in [p for p in path.split("/") if p]:
            walked += "/" + part
            resource = api.get_resource_for_path(walked)
            if resource is None:
                resource = backend.create_resource(api.id, parent.id, part)
            parent = resource
        for method, doc in methods.items():
            if method.startswith("x-") or method == "parameters":
                continue
            security = doc.get("security", default_security)
            names = {name for requirement in security for name in requirement}
            auth = "AWS_IAM" if names & sigv4 else "NONE"
            backend.put_method(api.id, parent.id, method.upper(), auth)
            integration = doc.get("x-amazon-apigateway-integration")
            if integration:
                backend.put_integration(
                    function_id=api.id,
                    resource_id=parent.id,
                    method_type=method.upper(),
                    integration_type=integration["type"].upper(),
                    uri=integration["uri"],
                    integration_method=integration.get("httpMethod", "POST"),
                )


def _physical_ids():
    from moto.apigateway.models import Deployment
    from moto.awslambda.models import Permission

    Deployment.physical_resource_id = property(lambda self: self.id)

    def complete(permission, _p, _account, _region, resource_name):
        # CloudFormation names a permission's statement after the stack and logical id.
        permission.physical_resource_id = resource_name

    _after_create(Permission, complete)


def _bucket_policy_conditions():
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self, action, resource):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy.decode())
        statements = document.get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else statements
        document["Statement"] = [s for s in statements if "Condition" not in s]
        if not document["Statement"]:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def _stream_delivery():
    from moto.awslambda.models import LambdaBackend

    def send_dynamodb_items(self, function_arn, items, source):
        # Not delivered inside the write: the router's poller reads the stream (GetRecords),
        # and a falsy result keeps the records in the shard for it.
        return None

    LambdaBackend.send_dynamodb_items = send_dynamodb_items


def _docker_client():
    from moto.utilities.docker_utilities import DockerModel

    original = DockerModel.docker_client

    def docker_client(self):
        try:
            return original.fget(self)
        except Exception as error:  # docker.errors.DockerException: no Docker here
            raise AttributeError(f"docker_client: {error}") from error

    DockerModel.docker_client = property(docker_client)


class EventBus(_Created):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type():
        return "AWS::Events::EventBus"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.events.models import events_backends

        backend = _backend(events_backends, account_id, region_name)
        p = cloudformation_json["Properties"]
        bus = backend.create_event_bus(name=p.get("Name", resource_name))
        return cls(bus.name, {"Arn": bus.arn, "Name": bus.name})


class EventBusPolicy(_Created):
    __module__ = MODULE
    @staticmethod
    def cloudformation_type():
        return "AWS::Events::EventBusPolicy"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.events.models import events_backends

        backend = _backend(events_backends, account_id, region_name)
        p = cloudformation_json["Properties"]
        statement = dict(p["Statement"])
        statement.setdefault("Sid", p["StatementId"])
        policy = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        backend.put_permission(p.get("EventBusName", "default"), None, None, None, None, policy)
        return cls(p["StatementId"])


SHIMS = {
    m.cloudformation_type(): m
    for m in (Secret, SecretResourcePolicy, Subscription, TopicPolicy, BucketPolicy, Stage, EventBus, EventBusPolicy)
}


def install():
    original = parsing.resource_class_from_type

    def resource_class_from_type(resource_type):
        return SHIMS.get(resource_type) or original(resource_type)

    parsing.resource_class_from_type = resource_class_from_type
    _state_machine()
    _table()
    _role()
    _bucket()
    _rest_api()
    _physical_ids()
    _bucket_policy_conditions()
    _stream_delivery()
    _docker_client()


if __name__ == "__main__":
    install()
    from moto.server import main

    sys.exit(main())
