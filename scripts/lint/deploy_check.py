"""What would break a deploy, found offline in the expanded template.

For each function in scripts/lint/functions.json (the lists in shared/src/deployment.rs):
  * IAM: every action its code performs is allowed by its role on the resource its environment
    names; its role holds no action its code never performs, on no other resource; no
    `Resource: "*"` except where AWS requires it (iam.RESOURCE_STAR_ALLOWED); only the AWS
    managed policies in iam.MANAGED_POLICIES.
  * Network: a function in a VPC reaches every AWS service it calls (gateway endpoint on its
    route table, interface endpoint with private DNS in its subnets admitting 443 from its
    security group and whose policy allows the call, or a NAT route), reaches the RDS Proxy on
    the database port, and the proxy reaches the database; a function outside a VPC needs none.
Each finding names the function, the call and what is missing.
"""

import ipaddress
import json

from iam import MANAGED_POLICIES, RESOURCE_STAR_ALLOWED, Role, as_list, matches, role_of, statements_of
from intrinsics import ACCOUNT, Resolver, Unresolvable

# Actions the Lambda service performs with the function's role for an SQS event source.
SQS_POLLER_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]


class Check:
    def __init__(self, expanded, parameters, manifest):
        self.template = expanded
        self.r = Resolver(expanded, parameters)
        self.manifest = manifest
        self.findings = []
        self.checked_proxies = set()

    def finding(self, text):
        self.findings.append(text)

    def resources_of(self, kind):
        return {
            lid: res
            for lid, res in self.r.resources.items()
            if res["Type"] == kind and self.r.exists(lid)
        }

    def props(self, logical_id):
        return self.r.value(self.r.resources[logical_id].get("Properties", {}))

    def logical(self, value):
        return self.r.logical.get(value)

    def function_of(self, value):
        """The function a FunctionName names: itself, or the function of an alias of it."""
        lid = self.logical(value)
        if lid in self.resources_of("AWS::Lambda::Alias"):
            return self.logical(self.props(lid).get("FunctionName"))
        return lid

    def network_of(self, props):
        """(VpcConfig, on Managed Instances): the function's own VpcConfig, or on Lambda Managed
        Instances that of its capacity provider, whose instances run it."""
        config = (props.get("CapacityProviderConfig") or {}).get(
            "LambdaManagedInstancesCapacityProviderConfig") or {}
        arn = str(config.get("CapacityProviderArn", ""))
        if not arn:
            return props.get("VpcConfig") or {}, False
        provider = self.logical(arn.rsplit(":capacity-provider:", 1)[-1]) or self.logical(arn)
        if provider not in self.resources_of("AWS::Lambda::CapacityProvider"):
            raise Unresolvable(f"CapacityProviderArn {arn}: not a capacity provider of this template")
        return self.props(provider).get("VpcConfig") or {}, True

    # -- what a function needs ------------------------------------------------------------
    def needed(self, fid, spec, env):
        """(action, resource ARN, why) for each call whose condition holds, plus the actions the
        Lambda service performs with the role (event source polling)."""
        needs = []
        for call in spec["calls"]:
            when = call.get("when")
            if when and env.get(when["var"]) != when["equals"]:
                continue
            arn = self.call_resource(fid, call, env)
            if arn:
                needs.append((call["action"], arn, ", ".join(call["operations"]) or "signed token"))
        for mid, mapping in self.resources_of("AWS::Lambda::EventSourceMapping").items():
            props = self.props(mid)
            if self.function_of(props.get("FunctionName")) != fid:
                continue
            source = str(props.get("EventSourceArn", ""))
            if ":sqs:" in source:
                for action in SQS_POLLER_ACTIONS:
                    needs.append((action, source, f"event source {mid} (polled by Lambda)"))
        return needs

    def call_resource(self, fid, call, env):
        res = call["resource"]
        r, p = self.r.region, self.r.partition
        kind = res["kind"]
        keys = [v for k, v in res.items() if k not in ("kind", "index", "prefix", "port")]
        missing = [k for k in keys if not env.get(k)]
        if missing:
            self.finding(
                f"{fid}: calls {call['action']} but its environment sets no {', '.join(missing)} "
                "to say on which resource"
            )
            return None
        if kind == "table":
            return self.table_arn(env[res["table"]])
        if kind == "index":
            return f"{self.table_arn(env[res['table']])}/index/{res['index']}"
        if kind == "objects":
            return f"arn:{p}:s3:::{env[res['bucket']]}/{res['prefix']}example/receipt.html"
        if kind == "topic":
            return env[res["topic"]]
        if kind == "dbUser":
            proxy = self.proxy_at(env[res["host"]])
            if proxy is None:
                self.finding(
                    f"{fid}: calls rds-db:connect but {res['host']}={env[res['host']]} is not "
                    "the endpoint of an RDS Proxy in this template"
                )
                return None
            proxy_arn = self.r.get_att(proxy, "DBProxyArn")
            proxy_id = proxy_arn.rsplit(":", 1)[1]
            return f"arn:{p}:rds-db:{r}:{ACCOUNT}:dbuser:{proxy_id}/{env[res['user']]}"
        raise ValueError(f"unknown resource kind {kind}")

    def table_arn(self, name):
        if str(name).startswith("arn:"):
            return name
        return f"arn:{self.r.partition}:dynamodb:{self.r.region}:{ACCOUNT}:table/{name}"

    def proxy_at(self, host):
        for pid in self.resources_of("AWS::RDS::DBProxy"):
            if self.r.get_att(pid, "Endpoint") == host:
                return pid
        return None

    # -- IAM --------------------------------------------------------------------------------
    def check_iam(self, fid, role, needs, has_vpc):
        for action, arn, why in needs:
            if not role.allows(action, arn):
                self.finding(
                    f"{fid}: its code calls {action} ({why}) on {arn}, which its role "
                    f"{role.logical_id} does not allow (add the grant to {fid}'s Policies)"
                )
        for statement in role.statements:
            if statement.effect != "Allow":
                continue
            for action in statement.actions:
                if action.startswith("NotAction:") or "*" in action or "?" in action:
                    self.finding(
                        f"{fid}: {statement.source} allows {action}; list the actions its code "
                        "performs instead"
                    )
                    continue
                uses = [(a, arn) for a, arn, _ in needs if a.lower() == action.lower()]
                if not uses:
                    self.finding(
                        f"{fid}: {statement.source} allows {action}, which its code never "
                        "performs (remove it)"
                    )
                    continue
                for resource in statement.resources:
                    if resource == "*":
                        if action not in RESOURCE_STAR_ALLOWED:
                            self.finding(
                                f"{fid}: {statement.source} allows {action} on Resource \"*\"; "
                                f"scope it to {uses[0][1]}"
                            )
                        continue
                    if not any(matches(resource, arn) for _, arn in uses):
                        self.finding(
                            f"{fid}: {statement.source} allows {action} on {resource}, which "
                            f"its code never uses (it uses {', '.join(arn for _, arn in uses)})"
                        )
                    elif any(matches(resource, self.other(arn)) for _, arn in uses):
                        self.finding(
                            f"{fid}: {statement.source} allows {action} on {resource}, wider "
                            f"than the {', '.join(arn for _, arn in uses)} its code uses"
                        )
        for arn in role.managed:
            policy = MANAGED_POLICIES.get(arn)
            if policy is None:
                self.finding(
                    f"{fid}: its role {role.logical_id} attaches {arn}, which the check does not "
                    "know (add it to scripts/lint/iam.py MANAGED_POLICIES with why, or remove it)"
                )
            elif policy["vpc_only"] and not has_vpc:
                self.finding(f"{fid}: attaches {arn} but has no VpcConfig")

    @staticmethod
    def other(arn):
        """An ARN of a different resource of the same kind, to find grants wider than needed."""
        if ":s3:::" in arn:
            bucket, _, _ = arn.split(":::", 1)[1].partition("/")
            return arn.split(":::", 1)[0] + f":::{bucket}/elsewhere/object"
        if "/index/" in arn:
            return arn.rsplit("/index/", 1)[0] + "/index/otherIndex"
        if ":dbuser:" in arn:
            return arn.rsplit("/", 1)[0] + "/other_user"
        return arn + "-other"

    # -- network ----------------------------------------------------------------------------
    def rules(self, sg, direction):
        """(protocol, from, to, peer group, peer CIDR) of a security group, one direction."""
        inline_key = "SecurityGroupIngress" if direction == "in" else "SecurityGroupEgress"
        kind = "AWS::EC2::SecurityGroupIngress" if direction == "in" else "AWS::EC2::SecurityGroupEgress"
        raw = list(self.props(sg).get(inline_key, []))
        for lid in self.resources_of(kind):
            props = self.props(lid)
            if self.logical(props.get("GroupId")) == sg:
                raw.append(props)
        if direction == "out" and not raw:
            return [("-1", 0, 65535, None, "0.0.0.0/0")]
        out = []
        for rule in raw:
            peer = rule.get("SourceSecurityGroupId") or rule.get("DestinationSecurityGroupId")
            prefix_list = rule.get("DestinationPrefixListId") or rule.get("SourcePrefixListId")
            out.append(
                (
                    str(rule.get("IpProtocol")),
                    int(rule.get("FromPort", 0)),
                    int(rule.get("ToPort", 65535)),
                    self.logical(peer) if peer else ("prefix-list" if prefix_list else None),
                    rule.get("CidrIp"),
                )
            )
        return out

    def subnet_cidrs(self, subnets):
        return [ipaddress.ip_network(self.props(s)["CidrBlock"]) for s in subnets]

    def admits(self, sg, direction, port, peer_groups, peer_subnets):
        for protocol, low, high, group, cidr in self.rules(sg, direction):
            if protocol not in ("tcp", "6", "-1"):
                continue
            if protocol != "-1" and not low <= port <= high:
                continue
            if group and group in peer_groups:
                return True
            if cidr:
                network = ipaddress.ip_network(cidr)
                cidrs = self.subnet_cidrs(peer_subnets)
                if cidrs and all(c.subnet_of(network) for c in cidrs):
                    return True
        return False

    def path(self, src_groups, src_subnets, dst_groups, dst_subnets, port):
        """Why TCP `port` from the source groups to the destination groups is blocked, or None."""
        if not any(self.admits(g, "out", port, dst_groups, dst_subnets) for g in src_groups):
            return f"no egress rule of {', '.join(src_groups)} allows tcp {port} to {', '.join(dst_groups)}"
        if not any(self.admits(g, "in", port, src_groups, src_subnets) for g in dst_groups):
            return f"{', '.join(dst_groups)} admits no tcp {port} from {', '.join(src_groups)}"
        return None

    def route_table(self, subnet):
        for lid in self.resources_of("AWS::EC2::SubnetRouteTableAssociation"):
            props = self.props(lid)
            if self.logical(props.get("SubnetId")) == subnet:
                return self.logical(props.get("RouteTableId"))
        return None

    def has_nat(self, table):
        for lid in self.resources_of("AWS::EC2::Route"):
            props = self.props(lid)
            if self.logical(props.get("RouteTableId")) == table and props.get("NatGatewayId") \
                    and props.get("DestinationCidrBlock") == "0.0.0.0/0":
                return True
        return False

    def service_route(self, fid, service, action, arn, subnet, groups):
        """None when the subnet reaches `service` for `action`, else what is missing."""
        table = self.route_table(subnet)
        endpoint_name = f"com.amazonaws.{self.r.region}.{service}"
        problems = []
        for eid in self.resources_of("AWS::EC2::VPCEndpoint"):
            props = self.props(eid)
            if props.get("ServiceName") != endpoint_name:
                continue
            if not self.endpoint_policy_allows(props, action, arn):
                problems.append(f"{eid}'s policy does not allow {action} on {arn}")
                continue
            kind = props.get("VpcEndpointType", "Gateway")
            if kind == "Gateway":
                tables = [self.logical(t) for t in props.get("RouteTableIds", [])]
                if table in tables:
                    # A gateway endpoint is reached through the service's prefix list.
                    if any(self.admits(g, "out", 443, ["prefix-list"], []) or self.egress_open(g, 443)
                           for g in groups):
                        return None
                    problems.append(f"{', '.join(groups)} allows no egress on 443 to {eid}")
                elif table is None:
                    problems.append(f"{subnet} has no route table association in this template "
                                    f"(it uses the VPC's main route table), so {eid} is not on it")
                else:
                    problems.append(f"{eid} is not on {subnet}'s route table {table}")
                continue
            subnets = [self.logical(s) for s in props.get("SubnetIds", [])]
            if self.logical(props.get("VpcId")) != self.logical(self.props(subnet).get("VpcId")):
                problems.append(f"{eid} is in another VPC than {subnet}")
                continue
            if not props.get("PrivateDnsEnabled"):
                problems.append(f"{eid} has no private DNS, so the SDK's default endpoint does not resolve to it")
                continue
            if subnet not in subnets:
                problems.append(f"{eid} has no interface in {subnet}")
                continue
            endpoint_groups = [self.logical(g) for g in props.get("SecurityGroupIds", [])]
            blocked = self.path(groups, [subnet], endpoint_groups, subnets, 443)
            if blocked is None:
                return None
            problems.append(f"{eid}: {blocked}")
        if table and self.has_nat(table):
            if any(self.egress_open(g, 443) for g in groups):
                return None
            problems.append(f"{', '.join(groups)} allows no egress on 443 to the NAT route")
        if not problems:
            problems.append(f"no {endpoint_name} endpoint and no NAT route on {table or 'its route table'}")
        return "; ".join(problems)

    def egress_open(self, sg, port):
        for protocol, low, high, group, cidr in self.rules(sg, "out"):
            if protocol in ("tcp", "6", "-1") and (protocol == "-1" or low <= port <= high) \
                    and cidr == "0.0.0.0/0":
                return True
        return False

    def endpoint_policy_allows(self, props, action, arn):
        document = props.get("PolicyDocument")
        if not document:
            return True
        statements = statements_of(document, "endpoint policy")
        return Role("endpoint", statements, []).allows(action, arn)

    def check_network(self, fid, props, spec, env, needs):
        vpc, managed = self.network_of(props)
        subnets = [self.logical(s) for s in vpc.get("SubnetIds", [])]
        groups = [self.logical(g) for g in vpc.get("SecurityGroupIds", [])]
        db_calls = [c for c in spec["calls"] if c["resource"]["kind"] == "dbUser"
                    and (not c.get("when") or env.get(c["when"]["var"]) == c["when"]["equals"])]
        uses_db = bool(db_calls) or bool(env.get("DB_HOST"))
        if not subnets:
            if uses_db:
                self.finding(
                    f"{fid}: connects to PostgreSQL at DB_HOST but has no VpcConfig; the RDS "
                    "Proxy is reachable only from inside its VPC"
                )
            return
        if not uses_db and not managed:
            self.finding(
                f"{fid}: sits in a VPC (VpcConfig) but its code reaches nothing there (no "
                "database); outside the VPC it needs no endpoints or NAT (remove VpcConfig)"
            )
        calls = [(a, arn, why) for a, arn, why in needs
                 if not a.startswith("rds-db:") and "polled by Lambda" not in why]
        if spec.get("answersCloudFormation"):
            calls.append(("s3:PutObject", "arn:aws:s3:::cloudformation-custom-resource-response-useast1/response",
                          "the CloudFormation response to the pre-signed S3 URL"))
        for action, arn, why in calls:
            service = action.split(":", 1)[0]
            for subnet in subnets:
                missing = self.service_route(fid, service, action, arn, subnet, groups)
                if missing:
                    self.finding(
                        f"{fid}: calls {action} ({why}) from {subnet}, which has no route to "
                        f"{service}: {missing}"
                    )
        if uses_db and env.get("DB_HOST"):
            proxy = self.proxy_at(env["DB_HOST"])
            if proxy is None:
                return
            port = int(env.get("DB_PORT") or 5432)
            proxy_props = self.props(proxy)
            # RDS Proxy listens on the engine's default port.
            listens = {"POSTGRESQL": 5432, "MYSQL": 3306, "SQLSERVER": 1433}.get(proxy_props.get("EngineFamily"))
            if listens and port != listens:
                self.finding(f"{fid}: connects to the RDS Proxy {proxy} on DB_PORT={port}, but it listens on {listens}")
            proxy_groups = [self.logical(g) for g in proxy_props.get("VpcSecurityGroupIds", [])]
            proxy_subnets = [self.logical(s) for s in proxy_props.get("VpcSubnetIds", [])]
            blocked = self.path(groups, subnets, proxy_groups, proxy_subnets, port)
            if blocked:
                self.finding(f"{fid}: connects to the RDS Proxy {proxy} on {port}, but {blocked}")
            self.check_proxy_target(proxy, proxy_groups, proxy_subnets)

    def check_proxy_target(self, proxy, proxy_groups, proxy_subnets):
        if proxy in self.checked_proxies:
            return
        self.checked_proxies.add(proxy)
        targets = [
            lid for lid in self.resources_of("AWS::RDS::DBProxyTargetGroup")
            if self.props(lid).get("DBProxyName") == self.r.ref(proxy)
        ]
        if not targets:
            self.finding(f"{proxy}: has no DBProxyTargetGroup, so it reaches no database")
        for tid in targets:
            for instance in self.props(tid).get("DBInstanceIdentifiers", []):
                db = self.logical(instance)
                if db is None:
                    continue
                db_props = self.props(db)
                port = int(db_props.get("Port", 5432))
                db_groups = [self.logical(g) for g in db_props.get("VPCSecurityGroups", [])]
                group_name = db_props.get("DBSubnetGroupName")
                db_subnets = []
                for gid in self.resources_of("AWS::RDS::DBSubnetGroup"):
                    if self.r.ref(gid) == group_name:
                        db_subnets = [self.logical(s) for s in self.props(gid).get("SubnetIds", [])]
                blocked = self.path(proxy_groups, proxy_subnets, db_groups, db_subnets, port)
                if blocked:
                    self.finding(f"{proxy}: cannot reach the database {db} on {port}: {blocked}")

    # -- all --------------------------------------------------------------------------------
    def run(self):
        functions = self.resources_of("AWS::Lambda::Function")
        for fid, spec in self.manifest["functions"].items():
            if fid not in functions:
                self.finding(f"{fid}: listed in shared/src/deployment.rs but not in the template")
                continue
            try:
                props = self.props(fid)
                env = {k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
                role_id = self.logical(props.get("Role"))
                if role_id is None:
                    self.finding(f"{fid}: its Role is not a role of this template")
                    continue
                role = role_of(self.r, role_id)
                needs = self.needed(fid, spec, env)
                self.check_iam(fid, role, needs, bool((props.get("VpcConfig") or {}).get("SubnetIds")))
                self.check_network(fid, props, spec, env, needs)
            except Unresolvable as error:
                self.finding(f"{fid}: {error}")
        for fid in functions:
            if fid not in self.manifest["functions"] and not fid.endswith("Version"):
                self.finding(f"{fid}: a function of the template with no list in shared/src/deployment.rs")
        return self.findings


def check(expanded, parameters, manifest_path):
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    return Check(expanded, parameters, manifest).run()
