"""Resolves CloudFormation intrinsic functions offline, far enough to compare ARNs.

Every resource gets a made-up physical name derived from its logical id (or the name its
properties give it), in a made-up account and region, and every attribute the checks use gets
the shape AWS gives it (a table ARN, a topic ARN, a proxy endpoint, ...). Two expressions that
name the same thing on AWS resolve to the same string here; different things never collide.
"""

import re

ACCOUNT = "123456789012"
STACK = "stack"


class Unresolvable(Exception):
    """An expression the checks cannot evaluate offline (Fn::ImportValue, an unknown attribute)."""


class Resolver:
    def __init__(self, template, parameters):
        self.template = template
        self.resources = template.get("Resources", {})
        self.region = parameters.get("AWS::Region", "us-east-1")
        self.partition = parameters.get("AWS::Partition", "aws")
        self.parameters = dict(parameters)
        self.pseudo = {
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{STACK}/id",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.conditions = {}
        # Made-up physical value -> logical id, to go from a resolved id back to its resource.
        self.logical = {}

    # -- conditions -------------------------------------------------------------------------
    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self.conditions[name]

    def exists(self, logical_id):
        resource = self.resources.get(logical_id)
        if resource is None:
            return False
        return "Condition" not in resource or self.condition(resource["Condition"])

    # -- names ------------------------------------------------------------------------------
    def name(self, logical_id):
        """The physical name: the one the properties give, else a generated one."""
        resource = self.resources[logical_id]
        props = resource.get("Properties", {})
        key = {
            "AWS::DynamoDB::Table": "TableName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::RDS::DBProxy": "DBProxyName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::IAM::Role": "RoleName",
        }.get(resource["Type"])
        if key and key in props:
            return str(self.value(props[key]))
        return f"{STACK}-{logical_id}-gen".lower() if resource["Type"] == "AWS::S3::Bucket" else f"{STACK}-{logical_id}-gen"

    def ref(self, logical_id):
        if logical_id in self.pseudo:
            return self.pseudo[logical_id]
        if logical_id == "AWS::NoValue":
            return None
        if logical_id in self.parameters:
            return self.parameters[logical_id]
        if logical_id not in self.resources:
            raise Unresolvable(f"Ref {logical_id}: no such parameter or resource")
        kind = self.resources[logical_id]["Type"]
        name = self.name(logical_id)
        r, a, p = self.region, ACCOUNT, self.partition
        value = {
            "AWS::SNS::Topic": f"arn:{p}:sns:{r}:{a}:{name}",
            "AWS::SQS::Queue": f"https://sqs.{r}.amazonaws.com/{a}/{name}",
            "AWS::SecretsManager::Secret": f"arn:{p}:secretsmanager:{r}:{a}:secret:{name}-AbCdEf",
            "AWS::IAM::ManagedPolicy": f"arn:{p}:iam::{a}:policy/{name}",
            "AWS::EC2::SecurityGroup": f"sg-{logical_id}",
            "AWS::EC2::Subnet": f"subnet-{logical_id}",
            "AWS::EC2::VPC": f"vpc-{logical_id}",
            "AWS::EC2::RouteTable": f"rtb-{logical_id}",
        }.get(kind, name)
        self.logical[value] = logical_id
        return value

    def get_att(self, logical_id, attribute):
        if logical_id not in self.resources:
            raise Unresolvable(f"Fn::GetAtt {logical_id}.{attribute}: no such resource")
        kind = self.resources[logical_id]["Type"]
        name = self.name(logical_id)
        r, a, p = self.region, ACCOUNT, self.partition
        known = {
            ("AWS::DynamoDB::Table", "Arn"): f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
            ("AWS::DynamoDB::Table", "StreamArn"): f"arn:{p}:dynamodb:{r}:{a}:table/{name}/stream/x",
            ("AWS::S3::Bucket", "Arn"): f"arn:{p}:s3:::{name}",
            ("AWS::SNS::Topic", "TopicName"): name,
            ("AWS::SNS::Topic", "TopicArn"): f"arn:{p}:sns:{r}:{a}:{name}",
            ("AWS::SQS::Queue", "Arn"): f"arn:{p}:sqs:{r}:{a}:{name}",
            ("AWS::SQS::Queue", "QueueName"): name,
            ("AWS::SQS::Queue", "QueueUrl"): f"https://sqs.{r}.amazonaws.com/{a}/{name}",
            ("AWS::RDS::DBProxy", "Endpoint"): f"{name}.proxy-c0ffee.{r}.rds.amazonaws.com",
            ("AWS::RDS::DBProxy", "DBProxyArn"): f"arn:{p}:rds:{r}:{a}:db-proxy:prx-{logical_id}",
            ("AWS::RDS::DBInstance", "Endpoint.Address"): f"{name}.c0ffee.{r}.rds.amazonaws.com",
            ("AWS::RDS::DBInstance", "Endpoint.Port"): "5432",
            ("AWS::EC2::SecurityGroup", "GroupId"): f"sg-{logical_id}",
            ("AWS::IAM::Role", "Arn"): f"arn:{p}:iam::{a}:role/{name}",
            ("AWS::Lambda::Function", "Arn"): f"arn:{p}:lambda:{r}:{a}:function:{name}",
            ("AWS::Logs::LogGroup", "Arn"): f"arn:{p}:logs:{r}:{a}:log-group:{name}:*",
            ("AWS::SecretsManager::Secret", "Id"): self.ref(logical_id),
        }
        value = known.get((kind, attribute), f"{name}.{attribute}")
        self.logical[value] = logical_id
        return value

    # -- expressions ------------------------------------------------------------------------
    def sub(self, text, variables):
        def replace(match):
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and expression.split(".", 1)[0] in self.resources:
                logical_id, attribute = expression.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(expression))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def value(self, node):
        """The value of a template node with its intrinsics evaluated."""
        if isinstance(node, list):
            values = [self.value(item) for item in node]
            return [v for v in values if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: self.value(v) for k, v in node.items()}
        (key, arg), = node.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical_id, self.value(attribute))
        if key == "Fn::Sub":
            if isinstance(arg, list):
                text, variables = arg
                return self.sub(text, {k: self.value(v) for k, v in variables.items()})
            return self.sub(arg, {})
        if key == "Fn::Join":
            separator, items = arg
            return separator.join(str(v) for v in self.value(items))
        if key == "Fn::Select":
            index, items = self.value(arg[0]), self.value(arg[1])
            return items[int(index)]
        if key == "Fn::Split":
            separator, text = arg
            return str(self.value(text)).split(separator)
        if key == "Fn::FindInMap":
            mapping, top, second = (self.value(a) for a in arg[:3])
            return self.template["Mappings"][mapping][top][second]
        if key == "Fn::GetAZs":
            return [f"{self.region}{zone}" for zone in "abc"]
        if key == "Fn::If":
            name, then, otherwise = arg
            return self.value(then if self.condition(name) else otherwise)
        if key == "Fn::Equals":
            return self.value(arg[0]) == self.value(arg[1])
        if key == "Fn::Not":
            return not self.value(arg[0])
        if key == "Fn::And":
            return all(self.value(a) for a in arg)
        if key == "Fn::Or":
            return any(self.value(a) for a in arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Base64":
            return self.value(arg)
        if key.startswith("Fn::"):
            raise Unresolvable(f"{key} is not evaluated offline")
        return {key: self.value(arg)}
