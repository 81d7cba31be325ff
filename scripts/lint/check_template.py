"""The template checks of scripts/lint-template that need no cfn-lint: run as

    python scripts/lint/check_template.py [--template FILE] [--param NAME=VALUE ...]

Prints one line per finding and exits 1 if there is any. The function lists come from
scripts/lint/functions.json (written from shared/src/deployment.rs; a Rust test keeps it equal).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from deploy_check import Check  # noqa: E402
from expand import ExpandError, expand, load, parameter_values  # noqa: E402

MANIFEST = os.path.join(HERE, "functions.json")
NEVER_SET = {"DB_PASSWORD": "secrets stay out of the template (DB_AUTH=iam)"}


def environment_findings(source, expanded, manifest):
    """Each function sets only variables its code reads, and every one it requires; each has
    a crate with its binary and a sample event per route and event source."""
    findings = []
    samples = []
    events_dir = os.path.join(ROOT, "events")
    for name in sorted(os.listdir(events_dir)):
        if name.endswith(".json"):
            with open(os.path.join(events_dir, name), encoding="utf-8") as f:
                samples.append(json.load(f))
    functions = manifest["functions"]
    for fid, resource in source.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        spec = functions.get(fid)
        if spec is None:
            findings.append(f"{fid}: shared/src/deployment.rs has no list for it")
            continue
        deployed = expanded["Resources"].get(fid, {}).get("Properties", {})
        variables = set(deployed.get("Environment", {}).get("Variables", {}))
        for name in sorted(variables & set(NEVER_SET)):
            findings.append(f"{fid} sets {name}: {NEVER_SET[name]}")
        for name in sorted(variables - set(spec["vars"])):
            findings.append(f"{fid} sets {name}, which its code does not read (config::vars)")
        for name in sorted(set(spec["required"]) - variables):
            findings.append(f"{fid} does not set {name}, which the function requires")

        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        crate = os.path.join(ROOT, "functions", binary or "?", "Cargo.toml")
        crate_text = ""
        if os.path.exists(crate):
            with open(crate, encoding="utf-8") as f:
                crate_text = f.read()
        if binary != spec["binary"] or f'name = "{binary}"' not in crate_text:
            findings.append(f"{fid}: builds {binary}, expected the crate functions/{spec['binary']}")

        for event_name, event in resource.get("Properties", {}).get("Events", {}).items():
            kind, props = event.get("Type"), event.get("Properties", {})
            if kind == "HttpApi":
                route = f"{props.get('Method', '').upper()} {props.get('Path', '')}"
                found = any(e.get("routeKey") == route for e in samples)
            elif kind == "SQS":
                found = any("Records" in e for e in samples)
            elif kind in ("Schedule", "ScheduleV2"):
                found = any(e.get("detail-type") == "Scheduled Event" for e in samples)
            else:
                found = True
            if not found:
                findings.append(f"{fid}.{event_name} ({kind}) has no sample event in events/")
    return findings


def findings_for(template_path, overrides=(), manifest_path=MANIFEST):
    """Every finding for one template."""
    source = load(template_path)
    parameters = parameter_values(source, overrides)
    expanded = expand(source, parameters)
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    return environment_findings(source, expanded, manifest) + Check(expanded, parameters, manifest).run()


def main():
    parser = argparse.ArgumentParser(prog="check_template.py")
    parser.add_argument("--template", default=os.path.join(ROOT, "template.yaml"))
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    try:
        findings = findings_for(args.template, args.param)
    except ExpandError as error:
        print(f"  {error}", file=sys.stderr)
        return 1
    for finding in findings:
        print(f"  {finding}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
