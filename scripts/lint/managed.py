"""The Lambda Managed Instances variant of template.yaml, derived from it.

SAM cannot switch a function's compute type with a parameter: the translator refuses
`CapacityProviderConfig` given through `Fn::If` and refuses it beside any `VpcConfig`, and a
function's compute type cannot change after its first deployment anyway. So template.yaml
declares the option in its `Metadata.ManagedInstances` and this module derives the deployable
template from it (deploy it as a separate stack):

* an `AWS::Serverless::CapacityProvider` in the private subnets, with the functions' security
  group (the instances reach the RDS Proxy and the VPC endpoints as the VPC functions do);
* a DynamoDB gateway endpoint on the private route table (query and updater leave the internet
  for the VPC, which has no NAT);
* each listed function: `CapacityProviderConfig` (its per-environment concurrency, the memory
  per vCPU), no `VpcConfig` (the capacity provider's network applies), at least the 2048 MB
  Managed Instances require, a published alias (`live`: Managed Instances run published
  versions), and no `DB_POOL_SIZE`, so that the pool defaults to one connection per concurrent
  invocation (shared/src/config.rs `default_pool_size`);
* event source mappings of a listed function invoke its alias.
"""

import copy

CAPACITY_PROVIDER = "ManagedInstancesCapacityProvider"
DYNAMODB_ENDPOINT = "DynamoDbGatewayEndpoint"
MIN_MEMORY_MB = 2048


class VariantError(Exception):
    """template.yaml's Metadata.ManagedInstances is missing or inconsistent."""


def settings(template):
    """template.yaml's Metadata.ManagedInstances."""
    found = (template.get("Metadata") or {}).get("ManagedInstances")
    if not isinstance(found, dict) or not isinstance(found.get("Functions"), dict):
        raise VariantError("template.yaml has no Metadata.ManagedInstances.Functions")
    return found


def managed_variant(template):
    """A copy of the SAM template with the listed functions on Lambda Managed Instances."""
    out = copy.deepcopy(template)
    config = settings(out)
    resources = out["Resources"]
    network = config["Network"]
    resources[CAPACITY_PROVIDER] = {
        "Type": "AWS::Serverless::CapacityProvider",
        "Properties": {
            "VpcConfig": {
                "SubnetIds": [{"Ref": s} for s in network["SubnetIds"]],
                "SecurityGroupIds": [
                    {"Fn::GetAtt": [g, "GroupId"]} for g in network["SecurityGroupIds"]
                ],
            },
        },
    }
    resources[DYNAMODB_ENDPOINT] = {
        "Type": "AWS::EC2::VPCEndpoint",
        "Properties": {
            "VpcEndpointType": "Gateway",
            "ServiceName": {"Fn::Sub": "com.amazonaws.${AWS::Region}.dynamodb"},
            "VpcId": {"Ref": network["VpcId"]},
            "RouteTableIds": [{"Ref": t} for t in network["RouteTableIds"]],
        },
    }
    for logical_id, concurrency in config["Functions"].items():
        resource = resources.get(logical_id)
        if not resource or resource.get("Type") != "AWS::Serverless::Function":
            raise VariantError(f"Metadata.ManagedInstances lists {logical_id}, not a function")
        props = resource.setdefault("Properties", {})
        for name in ("VpcConfig", "ReservedConcurrentExecutions", "ProvisionedConcurrencyConfig"):
            props.pop(name, None)
        props["CapacityProviderConfig"] = {
            # The ARN spelled out from the provider's name (its Ref): cfn-lint 1.58 knows no
            # attributes of AWS::Serverless::CapacityProvider, so a GetAtt of Arn fails E1010.
            "Arn": {
                "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}"
                f":capacity-provider:${{{CAPACITY_PROVIDER}}}"
            },
            "PerExecutionEnvironmentMaxConcurrency": int(concurrency),
            "ExecutionEnvironmentMemoryGiBPerVCpu": float(config.get("MemoryGiBPerVCpu", 2)),
        }
        props["MemorySize"] = max(int(props.get("MemorySize", MIN_MEMORY_MB)), MIN_MEMORY_MB)
        props.setdefault("AutoPublishAlias", "live")
        variables = (props.get("Environment") or {}).get("Variables") or {}
        variables.pop("DB_POOL_SIZE", None)
        for other in resources.values():
            if other.get("Type") == "AWS::Lambda::EventSourceMapping":
                target = other.get("Properties", {}).get("FunctionName")
                if target == {"Ref": logical_id}:
                    other["Properties"]["FunctionName"] = {"Ref": f"{logical_id}.Alias"}
    return out
