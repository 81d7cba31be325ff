"""Expands a SAM template offline, as CloudFormation's AWS::Serverless transform will.

The SAM translator (aws-sam-translator, the library `sam validate` and CloudFormation run)
turns every AWS::Serverless::* resource into the plain resources it deploys, with policy
templates (SNSPublishMessagePolicy, ...) as real IAM statements and AWS managed policies by ARN.
Needs no AWS account and no network: managed policy ARNs come from the map bundled with the
translator.
"""

import json
import logging
import os

from cfnlint.decode import decode
from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

# The translator records metrics nobody publishes offline, and warns about them at exit.
logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)


class ExpandError(Exception):
    """The template could not be read or transformed."""


def load(path):
    """The template as plain JSON types (the decoder's node types carry line numbers)."""
    template, matches = decode(path)
    if matches or template is None:
        raise ExpandError(f"{path} could not be read: {matches}")
    return json.loads(json.dumps(template))


def parameter_values(template, overrides=()):
    """Template defaults, then NAME=VALUE overrides, then the pseudo parameters."""
    values = {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise ExpandError(f"parameters are NAME=VALUE, got {item!r}")
        values[name] = value
    values.setdefault("AWS::Region", "us-east-1")
    values.setdefault("AWS::Partition", "aws")
    return values


def expand(template, parameters):
    """The CloudFormation template the transform produces from a SAM template."""
    template = json.loads(json.dumps(template))
    # `sam package` replaces each local CodeUri with the S3 object it uploads; do the same with
    # a placeholder, since the transform accepts only S3 locations.
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            properties = resource.setdefault("Properties", {})
            properties["CodeUri"] = f"s3://packaged-code/{logical_id}.zip"
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    # The translator asks boto for the region of the pseudo parameters it fills in.
    os.environ.setdefault("AWS_DEFAULT_REGION", parameters.get("AWS::Region", "us-east-1"))
    managed = get_bundled_managed_policy_map("aws") or {}
    try:
        return Translator(None, Parser()).translate(
            template,
            parameter_values=dict(parameters),
            get_managed_policy_map=lambda: managed,
        )
    except InvalidDocumentException as error:
        raise ExpandError("; ".join(cause.message for cause in error.causes)) from error
