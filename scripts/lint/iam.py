"""A function's IAM role in the expanded template, and what it allows.

Evaluates identity policies the way IAM does for the checks here: an action on a resource is
allowed when an Allow statement matches both (with `*` and `?` wildcards) and no Deny statement
does. Conditions are not evaluated (docs/DEPLOY.md lists that as unproven offline).
"""

import fnmatch
from dataclasses import dataclass, field

# AWS managed policies SAM attaches, what they allow, and why each is acceptable. The checks
# cannot read their documents offline, so these are the ones a role may carry; any other
# managed ARN is a finding. Their `Resource: "*"` is AWS's choice, not this template's.
MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "why": "Lambda writes the function's logs with its role (logs:CreateLogStream, PutLogEvents)",
        "actions": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "vpc_only": False,
    },
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "why": "Tracing: Active; X-Ray has no resource-level permissions",
        "actions": [
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
        ],
        "vpc_only": False,
    },
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": {
        "why": "VpcConfig: Lambda creates and deletes the function's network interfaces "
        "(ec2:CreateNetworkInterface has no resource-level scoping before the interface exists)",
        "actions": [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ],
        "vpc_only": True,
    },
}

# Actions that may carry `Resource: "*"` in this template's own policies, and why AWS requires it.
RESOURCE_STAR_ALLOWED = {
    # X-Ray has no resource ARNs to scope to.
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions",
    # CloudWatch metrics have no ARNs; scope with a cloudwatch:namespace condition instead.
    "cloudwatch:PutMetricData": "CloudWatch metrics have no ARNs (use a cloudwatch:namespace condition)",
    # Lambda creates the function's interfaces before they have ids.
    "ec2:CreateNetworkInterface": "the interface does not exist yet when Lambda creates it",
    "ec2:DescribeNetworkInterfaces": "EC2 Describe* actions support no resource-level permissions",
}


@dataclass
class Statement:
    effect: str
    actions: list
    resources: list
    source: str  # where it comes from, for messages
    conditions: dict = field(default_factory=dict)


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def matches(pattern, value, case_sensitive=True):
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def statements_of(document, source):
    """The statements of a policy document; NotAction/NotResource are reported as such."""
    out = []
    for raw in as_list(document.get("Statement")):
        out.append(
            Statement(
                effect=raw.get("Effect", "Allow"),
                actions=[str(a) for a in as_list(raw.get("Action"))]
                + [f"NotAction:{a}" for a in as_list(raw.get("NotAction"))],
                resources=[str(r) for r in as_list(raw.get("Resource"))]
                + [f"NotResource:{r}" for r in as_list(raw.get("NotResource"))],
                source=source,
                conditions=raw.get("Condition", {}),
            )
        )
    return out


@dataclass
class Role:
    logical_id: str
    statements: list  # this template's own statements (inline and its managed policies)
    managed: list  # AWS managed policy ARNs

    def allows(self, action, resource):
        allowed = False
        for s in self.statements:
            if not any(matches(a, action, False) for a in s.actions):
                continue
            if not any(matches(r, resource) for r in s.resources):
                continue
            if s.effect == "Deny":
                return False
            allowed = True
        if not allowed:
            for arn in self.managed:
                policy = MANAGED_POLICIES.get(arn)
                if policy and action in policy["actions"]:
                    allowed = True
        return allowed


def role_of(resolver, role_id):
    """The role's statements, from its inline policies, its customer managed policies in this
    template and any AWS::IAM::Policy attached to it."""
    resources = resolver.resources
    props = resolver.value(resources[role_id].get("Properties", {}))
    statements, managed = [], []
    for policy in props.get("Policies", []):
        statements += statements_of(
            policy.get("PolicyDocument", {}), f"{role_id} inline policy {policy.get('PolicyName')}"
        )
    template_policies = {
        resolver.ref(lid): lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::IAM::ManagedPolicy" and resolver.exists(lid)
    }
    for arn in props.get("ManagedPolicyArns", []):
        if arn in template_policies:
            lid = template_policies[arn]
            document = resolver.value(resources[lid]["Properties"]["PolicyDocument"])
            statements += statements_of(document, f"managed policy {lid}")
        else:
            managed.append(arn)
    role_arn = resolver.get_att(role_id, "Arn")
    role_name = resolver.name(role_id)
    for lid, r in resources.items():
        if r["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") or not resolver.exists(lid):
            continue
        policy_props = resolver.value(r.get("Properties", {}))
        if role_name in policy_props.get("Roles", []) or role_arn in policy_props.get("Roles", []):
            statements += statements_of(policy_props.get("PolicyDocument", {}), f"policy {lid}")
    return Role(role_id, statements, managed)
