"""Offline checks of the operations files, called by deploy/check-deploy.sh (which runs the
external validators: promtool, docker compose, kubernetes-validate).

    python deploy/check_deploy.py dashboards OUT_RULES   dashboards/*.json, and their PromQL written
                                                         as recording rules for promtool to parse
    python deploy/check_deploy.py metrics                every series the dashboards and the alert
                                                         rules query is one Argus exports
    python deploy/check_deploy.py alert-tests            every alert has a firing and a quiet test
    python deploy/check_deploy.py compose CONFIG_YAML    what `docker compose config` resolved:
                                                         bind-mounted files and the build exist
    python deploy/check_deploy.py dockerfile             deploy/Dockerfile (BuildKit's parser)
    python deploy/check_deploy.py kustomization          deploy/k8s/kustomization.yaml lists every manifest
    python deploy/check_deploy.py argus-configs OUT_DIR  the TOML files Argus is given in the image and
                                                         on Kubernetes, written out as Argus reads them

Each prints what it checked and exits non-zero with the reasons when something is wrong.
"""

import glob
import json
import os
import re
import sys
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARDS = os.path.join(ROOT, "dashboards")
RULES = os.path.join(DASHBOARDS, "alerts", "argus-rules.yml")
RULE_TESTS = os.path.join(DASHBOARDS, "alerts", "argus-rules.test.yml")
K8S = os.path.join(ROOT, "deploy", "k8s")

# What Grafana replaces before Prometheus sees a query.
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}

# The series of prometheus::process_collector::ProcessCollector (Linux).
PROCESS_SERIES = {
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
}

errors = []


def fail(message):
    errors.append(message)


def done(what):
    if errors:
        for message in errors:
            print(f"  FAILED: {message}", file=sys.stderr)
        sys.exit(1)
    print(f"  ok: {what}")


def rel(path):
    return os.path.relpath(path, ROOT)


def dashboard_files():
    return sorted(glob.glob(os.path.join(DASHBOARDS, "*.json")))


def load_dashboards():
    loaded = {}
    for path in dashboard_files():
        try:
            with open(path, encoding="utf-8") as f:
                loaded[path] = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            fail(f"{rel(path)} is not valid JSON: {e}")
    return loaded


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))  # collapsed rows hold their panels


def grafana_to_promql(expr):
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def check_dashboards(out_rules):
    dashboards = load_dashboards()
    if not dashboards and not errors:
        fail("no dashboards/*.json found")
    uids = {}
    groups = []
    for path, board in dashboards.items():
        name = rel(path)
        uid = board.get("uid")
        if not uid:
            fail(f"{name} has no uid")
        elif uid in uids:
            fail(f"{name} and {uids[uid]} share the uid {uid!r}")
        else:
            uids[uid] = name
        if not board.get("title"):
            fail(f"{name} has no title")
        variables = {v.get("name"): v for v in board.get("templating", {}).get("list", [])}
        if variables.get("datasource", {}).get("type") != "datasource":
            fail(f"{name}: no `datasource` variable of type datasource (the data source must be a variable)")
        ids = {}
        rules = []
        record = "dashboard:" + re.sub(r"[^a-zA-Z0-9_]", "_", str(uid))
        for panel in walk_panels(board.get("panels", [])):
            pid = panel.get("id")
            title = panel.get("title", "?")
            if pid is None:
                fail(f"{name}: panel {title!r} has no id")
            elif pid in ids:
                fail(f"{name}: panels {ids[pid]!r} and {title!r} share the id {pid}")
            else:
                ids[pid] = title
            if "gridPos" not in panel:
                fail(f"{name}: panel {title!r} has no gridPos")
            if panel.get("type") == "row":
                continue
            if panel.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"{name}: panel {title!r} does not use the ${{datasource}} variable")
            targets = panel.get("targets", [])
            if not targets:
                fail(f"{name}: panel {title!r} has no query")
            for target in targets:
                expr = target.get("expr", "")
                if not expr.strip():
                    fail(f"{name}: panel {title!r} query {target.get('refId')} is empty")
                    continue
                rules.append({"record": f"{record}:panel_{pid}:{target.get('refId', 'A')}", "expr": grafana_to_promql(expr)})
        for vname, variable in variables.items():
            query = variable.get("query")
            if variable.get("type") != "query":
                continue
            if isinstance(query, dict):
                query = query.get("query", "")
            match = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*", query or "")
            if not match:
                fail(f"{name}: variable {vname} is not a label_values(selector, label) query: {query!r}")
                continue
            rules.append({"record": f"{record}:variable_{vname}", "expr": grafana_to_promql(match.group(1))})
        groups.append({"name": name, "rules": rules})
        print(f"  {name}: uid {uid}, {len(ids)} panels, {len(rules)} queries")
    with open(out_rules, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": groups}, f, sort_keys=False)
    done("dashboards are valid JSON with a uid each and unique panel ids")


def promql_expressions():
    """(where, PromQL) of every dashboard query and alert rule."""
    found = []
    for path, board in load_dashboards().items():
        for panel in walk_panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                found.append((f"{rel(path)} panel {panel.get('title')!r}", target.get("expr", "")))
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable.get("query")
                found.append((f"{rel(path)} variable {variable.get('name')}", query if isinstance(query, str) else json.dumps(query)))
    with open(RULES, encoding="utf-8") as f:
        for group in yaml.safe_load(f)["groups"]:
            for rule in group["rules"]:
                found.append((f"{rel(RULES)} {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return found


def exported_series():
    """Series names Argus registers: the "argus_*" literals of pipeline/src (histograms add
    _bucket, _sum and _count), the process collector's, and Prometheus' own `up`."""
    names = set()
    process = False
    for path in glob.glob(os.path.join(ROOT, "pipeline", "src", "**", "*.rs"), recursive=True):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        names.update(re.findall(r'"(argus_[a-z0-9_]+)"', text))
        process = process or "ProcessCollector" in text
    series = {"up"}
    for name in names:
        series.update({name, f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    if process:
        series.update(PROCESS_SERIES)
    return series


def check_metrics():
    exported = exported_series()
    used = set()
    for where, expr in promql_expressions():
        without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
        for name in re.findall(r"\b(argus_[a-zA-Z0-9_]+|process_[a-zA-Z0-9_]+|up)\b", without_strings):
            used.add(name)
            if name not in exported:
                fail(f"{where} queries {name}, which Argus does not export (no \"{name}\" in pipeline/src)")
    print(f"  series queried: {', '.join(sorted(used))}")
    done("every queried series is exported by Argus")


def check_alert_tests():
    with open(RULES, encoding="utf-8") as f:
        alerts = [r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r]
    with open(RULE_TESTS, encoding="utf-8") as f:
        tests = yaml.safe_load(f)["tests"]
    firing, quiet = set(), set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    for alert in alerts:
        if alert not in firing:
            fail(f"alert {alert} has no test where it fires")
        if alert not in quiet:
            fail(f"alert {alert} has no test where it must not fire")
    for name in (firing | quiet) - set(alerts):
        fail(f"{rel(RULE_TESTS)} tests {name}, which is not an alert of {rel(RULES)}")
    done(f"each of the {len(alerts)} alerts is tested firing and not firing")


def check_compose(config_yaml):
    with open(config_yaml, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    services = config.get("services", {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                source = volume.get("source") if volume.get("type") == "bind" else None
            else:
                source = volume.split(":", 1)[0]
                source = source if source.startswith("/") else None
            if source and not os.path.exists(source):
                fail(f"service {name} mounts {source}, which does not exist")
        build = service.get("build")
        if build:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            if not os.path.isfile(os.path.join(context, dockerfile)):
                fail(f"service {name} builds {os.path.join(context, dockerfile)}, which does not exist")
    for needed in ("argus", "kafka", "redis", "prometheus", "grafana"):
        if needed not in services:
            fail(f"no service {needed}")
    done(f"{len(services)} services; bind mounts and the build context exist")


def check_dockerfile():
    import dockerfile  # PyPI `dockerfile`: BuildKit's own parser

    path = os.path.join(ROOT, "deploy", "Dockerfile")
    commands = dockerfile.parse_file(path)
    stages = []
    user = None
    seen = {"HEALTHCHECK": False, "EXPOSE": False}
    for command in commands:
        cmd = command.cmd.upper()
        if cmd == "FROM":
            value = [v.lower() for v in command.value]
            stages.append(value[2] if len(value) >= 3 and value[1] == "as" else None)
            user = None
        elif cmd in ("COPY", "ADD"):
            sources = command.value[:-1]
            copy_from = [f.split("=", 1)[1] for f in command.flags if f.startswith("--from=")]
            if copy_from:
                if copy_from[0].lower() not in stages[:-1]:
                    fail(f"line {command.start_line}: COPY --from={copy_from[0]} names no earlier stage")
                continue
            for source in sources:
                if not glob.glob(os.path.join(ROOT, source)):
                    fail(f"line {command.start_line}: {cmd} source {source} is not in the build context")
        elif cmd == "USER":
            user = command.value[0]
        elif cmd == "HEALTHCHECK":
            seen["HEALTHCHECK"] = "/healthz" in " ".join(command.value)
        elif cmd == "EXPOSE":
            seen["EXPOSE"] = "8090" in command.value
    if user in (None, "root", "0"):
        fail("the final stage runs as root")
    if not seen["HEALTHCHECK"]:
        fail("no HEALTHCHECK on /healthz")
    if not seen["EXPOSE"]:
        fail("port 8090 is not exposed")
    done(f"deploy/Dockerfile parses: {len(stages)} stages, runtime user {user}, COPY sources present")


def check_kustomization():
    with open(os.path.join(K8S, "kustomization.yaml"), encoding="utf-8") as f:
        listed = yaml.safe_load(f).get("resources", [])
    present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml")) if not p.endswith("kustomization.yaml"))
    for resource in listed:
        if not os.path.isfile(os.path.join(K8S, resource)):
            fail(f"kustomization.yaml lists {resource}, which does not exist")
    for manifest in present:
        if manifest not in listed:
            fail(f"deploy/k8s/{manifest} is not listed in kustomization.yaml")
    done(f"kustomization.yaml lists the {len(present)} manifests")


def k8s_documents(name):
    with open(os.path.join(K8S, name), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def check_argus_configs(out_dir):
    """Writes the configuration files Argus reads in its deployments, checks they are TOML, and
    prints `FILE<TAB>ENV` lines (ENV: space-separated NAME=VALUE) for check-deploy.sh to hand to
    `argus config`."""
    os.makedirs(out_dir, exist_ok=True)
    outputs = []

    with open(os.path.join(ROOT, "deploy", "argus-container.toml"), encoding="utf-8") as f:
        container = f.read()
    path = os.path.join(out_dir, "container.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(container)
    outputs.append((path, {"ARGUS_HTTP__LISTEN": "0.0.0.0:8090"}))

    config_map = next(d for d in k8s_documents("configmap.yaml") if d["kind"] == "ConfigMap")
    secret = next(d for d in k8s_documents("secret.yaml") if d["kind"] == "Secret")
    deployment = next(d for d in k8s_documents("deployment.yaml") if d["kind"] == "Deployment")
    container_spec = deployment["spec"]["template"]["spec"]["containers"][0]
    script = " ".join(container_spec.get("command", []) + container_spec.get("args", []))
    # The Deployment concatenates the ConfigMap's file and the Secret's fragment: do the same.
    if "argus.toml" not in script or "kafka-properties.toml" not in script:
        fail("the Deployment no longer builds its config from argus.toml + kafka-properties.toml: update this check")
    merged = config_map["data"]["argus.toml"] + secret["stringData"]["kafka-properties.toml"]
    path = os.path.join(out_dir, "kubernetes.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(merged)
    env = {}
    for item in container_spec.get("env", []):
        if "value" in item and item["name"].startswith("ARGUS_"):
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("secretKeyRef"):
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret["stringData"][ref["key"]]
    outputs.append((path, env))

    for path, env in outputs:
        try:
            with open(path, "rb") as f:
                tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            fail(f"{path} is not valid TOML: {e}")
        if any(" " in v or "\t" in v for v in env.values()):
            fail(f"an environment value for {path} has blanks: check-deploy.sh cannot pass it")
        print(f"{path}\t{' '.join(f'{k}={v}' for k, v in env.items())}")
    if errors:
        done("")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    checks = {
        "dashboards": check_dashboards,
        "metrics": check_metrics,
        "alert-tests": check_alert_tests,
        "compose": check_compose,
        "dockerfile": check_dockerfile,
        "kustomization": check_kustomization,
        "argus-configs": check_argus_configs,
    }
    if command not in checks:
        sys.exit(f"unknown check {command!r}\n{__doc__}")
    checks[command](*args)


if __name__ == "__main__":
    main()
