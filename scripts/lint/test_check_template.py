"""Planted defects: each test copies template.yaml, plants one defect that would break a deploy
(or widen a role) and asserts that the check reports it, naming the function, the call and what
is missing. Run by scripts/lint-template (and so by scripts/test):

    .venv/bin/python -m unittest discover -s scripts/lint -p 'test_*.py'
"""

import os
import tempfile
import unittest

from check_template import ROOT, findings_for

TEMPLATE = os.path.join(ROOT, "template.yaml")


def planted(*edits):
    """Findings for template.yaml with each (old, new) text edit applied once."""
    with open(TEMPLATE, encoding="utf-8") as f:
        text = f.read()
    for old, new in edits:
        if text.count(old) != 1:
            raise AssertionError(f"the defect's anchor is not in template.yaml exactly once: {old!r}")
        text = text.replace(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "template.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return findings_for(path)


def ingress_on_port(description, group, port):
    """An edit moving a database-port ingress rule (a SecurityGroupIngress resource) to `port`."""
    rule = f"""      Description: {description}
      GroupId: !GetAtt {group}.GroupId
      IpProtocol: tcp
"""
    database_port = "      FromPort: !FindInMap [Database, Settings, Port]\n" \
        "      ToPort: !FindInMap [Database, Settings, Port]\n"
    return (rule + database_port, rule + f"      FromPort: {port}\n      ToPort: {port}\n")


class PlantedDefects(unittest.TestCase):
    def assertFinding(self, findings, *parts):
        hits = [f for f in findings if all(p in f for p in parts)]
        self.assertTrue(hits, f"no finding with {parts}; findings: {findings}")

    def test_the_real_template_is_clean(self):
        self.assertEqual(findings_for(TEMPLATE), [])

    def test_missing_grant_sns_publish_removed_from_the_command_function(self):
        findings = planted((
            """      Policies:
        - SNSPublishMessagePolicy:
            TopicName: !GetAtt OrderEventsTopic.TopicName
        - !Ref DbConnectPolicy
      Events:
        CreateOrder:""",
            """      Policies:
        - !Ref DbConnectPolicy
      Events:
        CreateOrder:""",
        ))
        self.assertFinding(findings, "CommandFunction:", "sns:Publish", "(publish)",
                           "OrderEventsTopic", "does not allow")
        self.assertFalse([f for f in findings if f.startswith("RelayFunction")], findings)

    def test_grant_on_the_wrong_resource_query_on_the_table_not_its_index(self):
        findings = planted((
            'Resource: !Sub "${OrdersTable.Arn}/index/byCustomer"',
            "Resource: !GetAtt OrdersTable.Arn",
        ))
        self.assertFinding(findings, "QueryFunction:", "dynamodb:Query", "/index/byCustomer",
                           "does not allow")
        self.assertFinding(findings, "QueryFunction:", "dynamodb:Query", "never uses")

    def test_grant_wider_than_the_receipts_prefix(self):
        findings = planted((
            "Resource: !Sub ${ReceiptsBucket.Arn}/receipts/*",
            "Resource: !Sub ${ReceiptsBucket.Arn}/*",
        ))
        self.assertFinding(findings, "UpdaterFunction:", "s3:PutObject", "wider than")

    def test_wrong_database_user_in_the_connect_policy(self):
        findings = planted((
            "User: !FindInMap [Database, Settings, User]\n",
            "User: admin\n",
        ))
        for function in ("CommandFunction:", "RelayFunction:", "MigrateFunction:"):
            self.assertFinding(findings, function, "rds-db:connect", "dbuser:prx-DbProxy/orders",
                               "does not allow")

    def test_missing_sns_endpoint(self):
        findings = planted((
            "  SnsEndpoint:\n    Type: AWS::EC2::VPCEndpoint\n",
            "  SnsEndpointGone:\n    Type: AWS::SNS::Topic\n    Properties: {}\n  UnusedOld:\n"
            "    Type: AWS::EC2::VPCEndpoint\n    Condition: HasAlarmEmail\n",
        ))
        for function in ("CommandFunction:", "RelayFunction:"):
            self.assertFinding(findings, function, "sns:Publish", "PrivateSubnetA",
                               "no route to sns", "no com.amazonaws.us-east-1.sns endpoint")

    def test_endpoint_security_group_blocks_443(self):
        findings = planted((
            """        - Description: HTTPS from the functions in the VPC
          IpProtocol: tcp
          FromPort: 443
          ToPort: 443""",
            """        - Description: HTTPS from the functions in the VPC
          IpProtocol: tcp
          FromPort: 8443
          ToPort: 8443""",
        ))
        self.assertFinding(findings, "CommandFunction:", "sns:Publish", "no route to sns",
                           "EndpointSecurityGroup admits no tcp 443 from FunctionSecurityGroup")

    def test_endpoint_policy_that_does_not_allow_the_call(self):
        findings = planted((
            "            Principal: \"*\"\n            Action: sns:Publish\n            Resource: !Ref OrderEventsTopic\n\n",
            "            Principal: \"*\"\n            Action: sns:GetTopicAttributes\n"
            "            Resource: !Ref OrderEventsTopic\n\n",
        ))
        self.assertFinding(findings, "RelayFunction:", "sns:Publish", "SnsEndpoint's policy does not allow")

    def test_proxy_security_group_blocks_5432_from_the_functions(self):
        findings = planted(ingress_on_port("from the functions in the VPC", "ProxySecurityGroup", 5433))
        for function in ("CommandFunction:", "RelayFunction:", "MigrateFunction:"):
            self.assertFinding(findings, function, "RDS Proxy DbProxy on 5432",
                               "ProxySecurityGroup admits no tcp 5432 from FunctionSecurityGroup")

    def test_proxy_cannot_reach_the_database(self):
        findings = planted(ingress_on_port("from the RDS Proxy", "DatabaseSecurityGroup", 3306))
        self.assertFinding(findings, "DbProxy:", "Database on 5432",
                           "DatabaseSecurityGroup admits no tcp 5432 from ProxySecurityGroup")

    def test_function_in_a_vpc_with_no_route_to_a_service_it_calls(self):
        findings = planted((
            """      Timeout: 6
      Environment:""",
            """      Timeout: 6
      VpcConfig:
        SubnetIds: [!Ref PrivateSubnetA, !Ref PrivateSubnetB]
        SecurityGroupIds: [!GetAtt FunctionSecurityGroup.GroupId]
      Environment:""",
        ))
        self.assertFinding(findings, "QueryFunction:", "dynamodb:GetItem", "no route to dynamodb")
        self.assertFinding(findings, "QueryFunction:", "sits in a VPC", "remove VpcConfig")

    def test_migrate_function_cannot_answer_cloudformation_without_the_s3_route(self):
        findings = planted((
            "      RouteTableIds: [!Ref PrivateRouteTable]\n",
            "      RouteTableIds: []\n",
        ))
        self.assertFinding(findings, "MigrateFunction:", "s3:PutObject", "CloudFormation response",
                           "no route to s3", "not on PrivateSubnetA's route table")

    def test_function_security_group_without_https_egress(self):
        findings = planted((
            """        - Description: HTTPS to AWS APIs through the VPC endpoints
          IpProtocol: tcp
          FromPort: 443
          ToPort: 443
          CidrIp: 0.0.0.0/0""",
            """        - Description: HTTPS to AWS APIs through the VPC endpoints
          IpProtocol: tcp
          FromPort: 443
          ToPort: 443
          CidrIp: 10.99.0.0/16""",
        ))
        self.assertFinding(findings, "RelayFunction:", "sns:Publish", "no route to sns",
                           "no egress rule of FunctionSecurityGroup allows tcp 443")
        self.assertFinding(findings, "MigrateFunction:", "s3:PutObject", "no route to s3",
                           "FunctionSecurityGroup allows no egress on 443")

    def test_database_port_the_proxy_does_not_listen_on(self):
        findings = planted(("      Port: 5432\n", "      Port: 6432\n"))
        for function in ("CommandFunction:", "RelayFunction:", "MigrateFunction:"):
            self.assertFinding(findings, function, "DB_PORT=6432", "listens on 5432")

    def test_unused_action(self):
        findings = planted((
            """            - Effect: Allow
              Action: dynamodb:PutItem""",
            """            - Effect: Allow
              Action: [dynamodb:PutItem, dynamodb:DeleteItem]""",
        ))
        self.assertFinding(findings, "UpdaterFunction:", "dynamodb:DeleteItem", "never performs")

    def test_unjustified_resource_star(self):
        findings = planted((
            """        - !Ref DbConnectPolicy
      EventInvokeConfig:""",
            """        - !Ref DbConnectPolicy
        - Statement:
            - Effect: Allow
              Action: sns:Publish
              Resource: "*"
      EventInvokeConfig:""",
        ))
        self.assertFinding(findings, "RelayFunction:", "sns:Publish", 'Resource "*"', "scope it to")

    def test_unknown_managed_policy(self):
        findings = planted((
            """      Policies:
        - !Ref DbConnectPolicy
""",
            """      Policies:
        - !Ref DbConnectPolicy
        - AmazonS3FullAccess
""",
        ))
        self.assertFinding(findings, "MigrateFunction:", "AmazonS3FullAccess", "does not know")

    def test_a_variable_the_code_does_not_read(self):
        findings = planted((
            '          PROJECTION_CONCURRENCY: "8"\n',
            '          PROJECTION_CONCURRENCY: "8"\n          PROJECTION_THREADS: "8"\n',
        ))
        self.assertFinding(findings, "UpdaterFunction", "PROJECTION_THREADS", "does not read")


if __name__ == "__main__":
    unittest.main()


def variant_findings(edit=None):
    """Findings for the Managed Instances variant of template.yaml (scripts/managed-template),
    after `edit(variant)` if given."""
    import json

    from expand import load
    from managed import managed_variant

    variant = managed_variant(load(TEMPLATE))
    if edit:
        edit(variant)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "template-managed.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(variant, f)
        return findings_for(path)


class ManagedInstancesVariant(unittest.TestCase):
    def test_the_variant_is_clean(self):
        self.assertEqual(variant_findings(), [])

    def test_functions_on_instances_need_routes_from_the_capacity_providers_subnets(self):
        def without_dynamodb_endpoint(variant):
            del variant["Resources"]["DynamoDbGatewayEndpoint"]

        findings = variant_findings(without_dynamodb_endpoint)
        for function in ("QueryFunction", "UpdaterFunction"):
            self.assertTrue(
                any(f.startswith(f"{function}: calls dynamodb:") and "no route to dynamodb" in f
                    for f in findings),
                findings,
            )

    def test_the_command_on_instances_reaches_the_proxy_only_through_its_security_group(self):
        def capacity_provider_without_security_group(variant):
            provider = variant["Resources"]["ManagedInstancesCapacityProvider"]
            provider["Properties"]["VpcConfig"]["SecurityGroupIds"] = [
                {"Fn::GetAtt": ["EndpointSecurityGroup", "GroupId"]}
            ]

        findings = variant_findings(capacity_provider_without_security_group)
        self.assertTrue(
            any(f.startswith("CommandFunction: connects to the RDS Proxy") for f in findings),
            findings,
        )
