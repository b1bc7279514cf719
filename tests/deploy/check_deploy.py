"""Checks of deploy/ that need no container engine and no Kubernetes: run by check_deploy.sh.

Usage: check_deploy.py AGENT_BINARY SOURCE_DIR BUILD_DIR WORK_DIR

Every YAML file under deploy/ is parsed with PyYAML, the Kubernetes manifests are checked
field by field against each other, the Containerfile against the agent and the build, the
agent's flags as the image, the DaemonSet, the systemd unit and the textfile units would
pass them against the real agent (--check-config), and the DaemonSet's probes against a
running agent. Prints one "ok"/"FAIL" line per check; exits 1 on any failure.
"""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request

import yaml

agent, source_dir, build_dir, work = sys.argv[1:5]
deploy = os.path.join(source_dir, "deploy")
failures = 0


def check(name, condition, detail=""):
    global failures
    if condition:
        print(f"ok   {name}")
    else:
        failures += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))
    return condition


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def rel(path):
    return os.path.relpath(path, source_dir)


# --------------------------------------------------------------------------- YAML files
documents = {}  # relative path -> list of documents
for path in sorted(glob.glob(os.path.join(deploy, "**", "*.y*ml"), recursive=True)):
    try:
        with open(path, encoding="utf-8") as f:
            documents[rel(path)] = [d for d in yaml.safe_load_all(f) if d is not None]
        check(f"yaml parses: {rel(path)} ({len(documents[rel(path)])} document(s))",
              documents[rel(path)], "no document")
    except yaml.YAMLError as error:
        check(f"yaml parses: {rel(path)}", False, str(error).replace("\n", " "))
check("deploy/ has the Kubernetes manifests",
      {f"deploy/kubernetes/{name}.yaml" for name in
       ("namespace", "configmap", "daemonset", "service", "servicemonitor", "prometheusrule")}
      <= set(documents),
      sorted(documents))

objects = {}  # kind -> object, from deploy/kubernetes/
expected_api = {"Namespace": "v1", "DaemonSet": "apps/v1", "Service": "v1",
                "ServiceMonitor": "monitoring.coreos.com/v1",
                "PrometheusRule": "monitoring.coreos.com/v1", "ConfigMap": "v1"}
for path, docs in documents.items():
    if not path.startswith("deploy/kubernetes/"):
        continue
    for doc in docs:
        kind = doc.get("kind")
        check(f"{path}: {kind} has apiVersion {expected_api.get(kind)}",
              kind in expected_api and doc.get("apiVersion") == expected_api[kind],
              f"kind {kind!r}, apiVersion {doc.get('apiVersion')!r}")
        check(f"{path}: {kind} is the only one of its kind", kind not in objects)
        objects[kind] = doc
namespace = "virtcaps-system"
for kind, doc in objects.items():
    where = doc["metadata"].get("name") if kind == "Namespace" else doc["metadata"].get("namespace")
    check(f"{kind} is in namespace {namespace}", where == namespace, repr(where))

ds = objects.get("DaemonSet", {})
svc = objects.get("Service", {})
sm = objects.get("ServiceMonitor", {})
pod = ds.get("spec", {}).get("template", {}).get("spec", {})
pod_labels = ds.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
containers = pod.get("containers", [])
check("DaemonSet has one container", len(containers) == 1, len(containers))
container = containers[0] if containers else {}
selector = ds.get("spec", {}).get("selector", {}).get("matchLabels", {})
check("DaemonSet selector matches its pod labels",
      selector and all(pod_labels.get(k) == v for k, v in selector.items()), selector)

# Volumes: the host's / read-only, /dev/kvm as a CharDevice.
volumes = {v["name"]: v for v in pod.get("volumes", [])}
mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
by_host_path = {v["hostPath"]["path"]: v for v in volumes.values() if "hostPath" in v}
root = by_host_path.get("/")
check("DaemonSet has a hostPath volume for /", root is not None, sorted(by_host_path))
root_mount = mounts.get(root["name"], {}) if root else {}
check("host / is mounted read-only at /host",
      root_mount.get("mountPath") == "/host" and root_mount.get("readOnly") is True, root_mount)
kvm = by_host_path.get("/dev/kvm")
check("DaemonSet has a hostPath volume for /dev/kvm of type CharDevice",
      kvm is not None and kvm["hostPath"].get("type") == "CharDevice", kvm)
kvm_mount = mounts.get(kvm["name"], {}) if kvm else {}
check("/dev/kvm is mounted where the agent opens it (<rootfs>/dev/kvm = /host/dev/kvm), writable",
      kvm_mount.get("mountPath") == "/host/dev/kvm" and not kvm_mount.get("readOnly"), kvm_mount)
check("every volume is mounted and every mount has a volume", set(volumes) == set(mounts),
      f"volumes {sorted(volumes)}, mounts {sorted(mounts)}")

# Security: non-root, read-only root filesystem, no privilege escalation, no capabilities.
pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
check("readOnlyRootFilesystem: true", sc.get("readOnlyRootFilesystem") is True)
check("runAsNonRoot: true with a non-zero runAsUser",
      (pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot")) is True
      and (sc.get("runAsUser") or pod_sc.get("runAsUser") or 0) > 0)
check("supplementalGroups names the kvm group by number",
      all(isinstance(g, int) for g in pod_sc.get("supplementalGroups", [None])))
# The one capability: CAP_SYS_CHROOT, which the image's agent has as a file capability
# (permitted only) to run the host's emulators inside /host. Gaining a file capability
# is "privilege escalation" to Kubernetes (no_new_privs would block it), so that is
# allowed, and the bounding set (drop ALL, add SYS_CHROOT) is what it can gain.
check("capabilities drop ALL and add only SYS_CHROOT, not privileged",
      sc.get("capabilities", {}).get("drop") == ["ALL"]
      and sc.get("capabilities", {}).get("add") == ["SYS_CHROOT"] and not sc.get("privileged"),
      sc.get("capabilities"))
check("no hostNetwork, hostPID or hostIPC",
      not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"))
tolerations = pod.get("tolerations", [])
check("tolerates every taint (operator Exists, no key)",
      any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect")
          for t in tolerations), tolerations)
resources = container.get("resources", {})
check("resources have cpu and memory requests and limits",
      all(r in resources.get(k, {}) for k in ("requests", "limits") for r in ("cpu", "memory")),
      resources)

# Ports and probes.
ports = {p.get("name"): p for p in container.get("ports", [])}
container_port = ports.get("metrics", {}).get("containerPort")
check("container port 'metrics' is 9977", container_port == 9977, ports)
probe_paths = {}
for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
    get = container.get(probe, {}).get("httpGet", {})
    port = get.get("port")
    resolved = ports.get(port, {}).get("containerPort") if isinstance(port, str) else port
    probe_paths[probe] = get.get("path")
    check(f"{probe} is an httpGet of /healthz on port 9977",
          get.get("path") == "/healthz" and resolved == 9977, get)

# Service: headless, port 9977 to the container's port, selecting the pods.
svc_spec = svc.get("spec", {})
check("Service is headless (clusterIP: None)", svc_spec.get("clusterIP") == "None")
svc_selector = svc_spec.get("selector", {})
check("Service selects the DaemonSet's pods",
      svc_selector and all(pod_labels.get(k) == v for k, v in svc_selector.items()), svc_selector)
svc_ports = {p.get("name"): p for p in svc_spec.get("ports", [])}
svc_port = svc_ports.get("metrics", {})
target = svc_port.get("targetPort")
target = ports.get(target, {}).get("containerPort") if isinstance(target, str) else target
check("Service port 'metrics' is 9977 and reaches container port 9977",
      svc_port.get("port") == 9977 and target == container_port == 9977, svc_port)

# ServiceMonitor: selects the Service, scrapes its port at the agent's telemetry path.
sm_spec = sm.get("spec", {})
sm_selector = sm_spec.get("selector", {}).get("matchLabels", {})
svc_labels = svc.get("metadata", {}).get("labels", {})
check("ServiceMonitor selects the Service by its labels",
      sm_selector and all(svc_labels.get(k) == v for k, v in sm_selector.items()), sm_selector)
check("ServiceMonitor looks in namespace virtcaps-system",
      namespace in sm_spec.get("namespaceSelector", {}).get("matchNames", []))
endpoints = sm_spec.get("endpoints", [])
check("ServiceMonitor scrapes the Service's 'metrics' port at /metrics",
      len(endpoints) == 1 and endpoints[0].get("port") in svc_ports
      and endpoints[0].get("path", "/metrics") == "/metrics", endpoints)

# The job name: the Prometheus Operator names the job after the Service; the example
# scrape config and the alert rules (up{job="virtcaps"}) expect "virtcaps".
prometheus_yml = documents.get("deploy/prometheus/prometheus.yml", [{}])[0]
jobs = [c.get("job_name") for c in prometheus_yml.get("scrape_configs", [])]
rules = documents.get("deploy/prometheus/virtcaps-alerts.yml", [{}])[0]
alert_jobs = set()
for group in rules.get("groups", []):
    for rule in group.get("rules", []):
        alert_jobs.update(re.findall(r'job="([^"]+)"', rule.get("expr", "")))
check("the PrometheusRule holds exactly the groups of deploy/prometheus/virtcaps-alerts.yml "
      "(which promtool checks and unit-tests)",
      objects.get("PrometheusRule", {}).get("spec") == rules and rules.get("groups"))
check("Service name = scrape job in prometheus.yml = job of the alert rules",
      svc.get("metadata", {}).get("name") in jobs and alert_jobs <= {svc["metadata"]["name"]},
      f"service {svc.get('metadata', {}).get('name')!r}, jobs {jobs}, alert jobs {sorted(alert_jobs)}")

# ------------------------------------------------------------------------ Containerfile
containerfile = os.path.join(deploy, "container", "Containerfile")
instructions = []  # (instruction, arguments, stage index)
stage = -1
with open(containerfile, encoding="utf-8") as f:
    text = re.sub(r"\\\n", " ", "".join(l for l in f if not l.lstrip().startswith("#")))
for line in text.splitlines():
    if not line.strip():
        continue
    word, _, rest = line.strip().partition(" ")
    word = word.upper()
    if word == "FROM":
        stage += 1
    instructions.append((word, rest.strip(), stage))
froms = [rest for word, rest, _ in instructions if word == "FROM"]
check("Containerfile has two stages, both Debian 12 (bookworm)",
      len(froms) == 2 and all(re.match(r"(docker\.io/(library/)?)?debian:bookworm(-slim)?(\s|$)", f)
                              for f in froms), froms)
check("the first stage is named build", len(froms) > 0 and froms[0].endswith(" AS build"), froms)
build_runs = " ".join(rest for word, rest, s in instructions if word == "RUN" and s == 0)
check("the build stage installs the packages of scripts/install-deps.sh by running it",
      "scripts/install-deps.sh build" in build_runs)
for word, rest, s in instructions:
    if word == "COPY" and not rest.startswith("--from"):
        sources = rest.split()[:-1]
        check(f"COPY source exists in the repository: {' '.join(sources)}",
              all(os.path.exists(os.path.join(source_dir, p)) for p in sources))

# The runtime stage's packages = the packages of the libraries the installed agent links.
runtime_runs = " ".join(rest for word, rest, s in instructions if word == "RUN" and s == 1)
match = re.search(r"apt-get install -y --no-install-recommends ([^&]+)", runtime_runs)
runtime_packages = set(match.group(1).split()) if match else set()
# setcap's package is a tool of the stage, purged once the file capability is set.
tool_packages = {"libcap2-bin"}
check("the runtime stage purges the packages it only needed as tools",
      all(re.search(rf"apt-get purge -y [^&]*\b{re.escape(t)}\b", runtime_runs) for t in tool_packages),
      runtime_runs)
runtime_packages -= tool_packages
staging = os.path.join(work, "staging")
# The build stage's install step, on this build tree.
install = run(["cmake", "--install", build_dir, "--prefix", "/usr", "--component", "Unspecified"],
              env=dict(os.environ, DESTDIR=staging))
check("the build stage's `cmake --install --component Unspecified` works", install.returncode == 0,
      install.stderr.strip())
staged = sorted(os.path.relpath(os.path.join(d, f), staging)
                for d, _, files in os.walk(staging) for f in files)
copied = [rest.split()[1] for word, rest, s in instructions if word == "COPY" and rest.startswith("--from=build")]
check("the runtime stage copies everything the build stage installs",
      all(any(("/" + p).startswith(c.replace("/staging", "", 1).rstrip("/")) for c in copied)
          for p in staged), f"installed {staged}, copied {copied}")
staged_agent = os.path.join(staging, "usr", "bin", "virtcaps-agent")
staged_module = os.path.join(staging, "usr", "lib", "virtcaps", "libvirtcaps-tls.so")
ldd = run(["ldd", staged_agent])
ldd_module = run(["ldd", staged_module])
agent_libraries = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd.stdout, re.M))
module_libraries = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd_module.stdout, re.M))
check("the installed agent finds all its libraries, and links no OpenSSL (only its TLS module does)",
      ldd.returncode == 0 and "not found" not in ldd.stdout
      and not any(name.startswith(("libssl", "libcrypto.")) for name in agent_libraries),
      ldd.stdout.strip())
check("the installed TLS module finds all its libraries (the TLS shims through its RUNPATH)",
      ldd_module.returncode == 0 and "not found" not in ldd_module.stdout
      and os.path.realpath(module_libraries.get("libssl.so", "")).startswith(
          os.path.join(os.path.realpath(staging), "usr/lib/virtcaps/")),
      ldd_module.stdout.strip())
libraries = {**agent_libraries, **module_libraries}
owners = set()
for soname, path in libraries.items():
    if path.startswith(staging):
        continue
    real_dir = os.path.dirname(path).removeprefix("/usr")
    search = run(["dpkg", "-S", f"*/{os.path.basename(path)}"])
    for entry in search.stdout.splitlines():
        package, _, owned = entry.partition(": ")
        if os.path.dirname(owned).removeprefix("/usr") == real_dir:
            owners.add(package.split(":")[0])
base = {"libc6", "libgcc-s1"}  # in every Debian image
check("the runtime stage installs the package of every library the agent and its TLS module link",
      owners - base <= runtime_packages, f"missing {sorted(owners - base - runtime_packages)}")
check("the runtime stage installs only those packages",
      runtime_packages <= owners, f"not needed: {sorted(runtime_packages - owners)}")

check("allowPrivilegeEscalation: true, for the image's file capability cap_sys_chroot+p on "
      "the agent, in an image without setuid/setgid files and with the shims in the loader's cache",
      sc.get("allowPrivilegeEscalation") is True
      and "setcap cap_sys_chroot+p /usr/bin/virtcaps-agent" in runtime_runs
      and "-perm /6000 -exec chmod ug-s" in runtime_runs
      and "/etc/ld.so.conf.d/00-virtcaps.conf && ldconfig" in runtime_runs,
      sc.get("allowPrivilegeEscalation"))
# User, port, entrypoint.
users = [rest for word, rest, s in instructions if word == "USER" and s == 1]
uid = users[-1].split(":")[0] if users else "0"
check("the runtime stage runs as a numeric non-root user", uid.isdigit() and int(uid) > 0, users)
check("the DaemonSet runs as the image's user",
      str(sc.get("runAsUser") or pod_sc.get("runAsUser")) == uid, uid)
check(f"the runtime stage creates user {uid}", f"--uid {uid}" in runtime_runs)
exposed = [rest for word, rest, s in instructions if word == "EXPOSE"]
check("EXPOSE 9977", exposed == ["9977"], exposed)
entrypoints = [json.loads(rest) for word, rest, s in instructions if word == "ENTRYPOINT"]
entrypoint = entrypoints[-1] if entrypoints else []
check("ENTRYPOINT is the exec form of /usr/bin/virtcaps-agent with --path.rootfs=/host "
      "--web.listen-address=:9977",
      entrypoint == ["/usr/bin/virtcaps-agent", "--path.rootfs=/host", "--web.listen-address=:9977"],
      entrypoint)
copy_targets = {rest.split()[2]: rest.split()[1] for word, rest, s in instructions
                if word == "COPY" and rest.startswith("--from=build")}
check("every file copied from the build stage lands where the build stage installed it",
      all(src.replace("/staging", "", 1) == dst for dst, src in copy_targets.items()), copy_targets)
check("the entrypoint's executable is the agent copied from the build stage",
      entrypoint[:1] and entrypoint[0] in copy_targets, entrypoint[:1])

# ------------------------------------------------------- flags against the real agent
help_text = run([agent, "--help"]).stdout
known = set(re.findall(r"^\s+(--[a-z][a-z.-]*)", help_text, re.M))
known_prefixes = {"--collector.", "--no-collector."}


def flags_known(flags):
    unknown = []
    for flag in flags:
        name = flag.split("=", 1)[0]
        if name not in known and not any(name.startswith(p) for p in known_prefixes):
            unknown.append(name)
    return unknown


def check_flags(name, flags):
    unknown = flags_known(flags)
    check(f"{name}: every flag is in the agent's --help", not unknown, f"unknown {unknown}")
    result = run([agent, *flags, "--check-config"])
    check(f"{name}: the agent's --check-config accepts {' '.join(flags)}", result.returncode == 0,
          (result.stdout + result.stderr).strip())


check_flags("ENTRYPOINT", entrypoint[1:])
ds_flags = entrypoint[1:] + container.get("args", [])
check("the DaemonSet does not replace the image's entrypoint", "command" not in container)
# The configuration file the DaemonSet's flags name comes from the ConfigMap's volume:
# written out here so that the agent checks it (and the probes below run with it).
config_map = objects.get("ConfigMap", {})
config_volumes = {v["name"]: v["configMap"]["name"] for v in volumes.values() if "configMap" in v}
config_paths = {}
for name, mount in mounts.items():
    if config_volumes.get(name) == config_map.get("metadata", {}).get("name"):
        for key, content in config_map.get("data", {}).items():
            local = os.path.join(work, f"configmap-{key}")
            with open(local, "w", encoding="utf-8") as f:
                f.write(content)
            config_paths[os.path.join(mount["mountPath"], key)] = local
config_flags = [f.split("=", 1)[1] for f in ds_flags if f.startswith("--config.file=")]
check("the DaemonSet's --config.file is a key of the mounted ConfigMap",
      len(config_flags) == 1 and config_flags[0] in config_paths, f"{config_flags} vs {sorted(config_paths)}")
ds_flags = [f"--config.file={config_paths.get(f.split('=', 1)[1], f)}" if f.startswith("--config.file=") else f
            for f in ds_flags]
check_flags("DaemonSet (entrypoint + args, ConfigMap's virtcaps.yaml)", ds_flags)

# The systemd unit's ExecStart, with the configuration the package installs at /etc.
unit = os.path.join(deploy, "systemd", "virtcaps-agent.service")
exec_start = [l.split("=", 1)[1] for l in open(unit, encoding="utf-8") if l.startswith("ExecStart=")]
argv = shlex.split(exec_start[0]) if exec_start else []
check("virtcaps-agent.service starts /usr/bin/virtcaps-agent", argv[:1] == ["/usr/bin/virtcaps-agent"], argv)
flags = [a.replace("/etc/virtcaps/virtcaps.yaml", os.path.join(source_dir, "config", "virtcaps.yaml"))
         for a in argv[1:] if not a.startswith("$")]
check_flags("virtcaps-agent.service ExecStart (config/virtcaps.yaml for /etc/virtcaps/virtcaps.yaml)", flags)

# The textfile units call the script, which calls the agent with VIRTCAPS_AGENT_ARGS.
textfile_unit = os.path.join(deploy, "textfile", "virtcaps-textfile.service")
for line in open(textfile_unit, encoding="utf-8"):
    if line.startswith("Environment=VIRTCAPS_AGENT_ARGS="):
        args = shlex.split(line.split("=", 2)[2])
        args = [a.replace("/etc/virtcaps/virtcaps.yaml", os.path.join(source_dir, "config", "virtcaps.yaml"))
                for a in args]
        check_flags("virtcaps-textfile.service VIRTCAPS_AGENT_ARGS", args)

# ------------------------------------------- the DaemonSet's probes against a live agent
# The DaemonSet's flags, with the two that only make sense in the pod replaced: the host
# is read at / here, and the agent listens on a free loopback port, never on every address.
live_flags = [f for f in ds_flags
              if not f.startswith("--web.listen-address") and not f.startswith("--path.rootfs")]
log_path = os.path.join(work, "agent.log")
with open(log_path, "w") as log:
    server = subprocess.Popen([agent, *live_flags, "--path.rootfs=/", "--web.listen-address=127.0.0.1:0"],
                              stdout=subprocess.DEVNULL, stderr=log)
try:
    port = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        text = open(log_path).read()
        found = re.search(r"msg=listening address=127\.0\.0\.1:(\d+)", text)
        if found and 'msg="first snapshot ready"' in text:
            port = int(found.group(1))
            break
        time.sleep(0.1)
    check("the agent starts with the DaemonSet's flags", port is not None, open(log_path).read()[-500:])
    if port:
        for probe, path in sorted(probe_paths.items()):
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
            except Exception as error:  # noqa: BLE001 - any failure is the answer
                status = error
            check(f"{probe} {path} answers 200 on the running agent", status == 200, status)
        path = endpoints[0].get("path", "/metrics") if endpoints else "/metrics"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read().decode()
        check(f"the ServiceMonitor's path {path} serves the agent's metrics",
              "\nvirtcaps_build_info{" in body, body[:200])
finally:
    server.terminate()
    server.wait(timeout=10)

# ---------------------------------- metric names used by the rules and the dashboard
doc = open(os.path.join(source_dir, "docs", "metrics.md"), encoding="utf-8").read()
families = set(re.findall(r"^\| `(virtcaps_[a-z0-9_]+)` \|", doc, re.M))
used = {}
for group in rules.get("groups", []):
    for rule in group.get("rules", []):
        for name in re.findall(r"\bvirtcaps_[a-z0-9_]+", rule.get("expr", "")):
            used.setdefault(name, "virtcaps-alerts.yml")
try:
    dashboard = json.load(open(os.path.join(deploy, "grafana", "virtcaps-fleet.json"), encoding="utf-8"))
except ValueError as error:
    check("virtcaps-fleet.json is JSON", False, error)
    dashboard = {}
def exprs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from exprs(value)
for expr in exprs(dashboard):
    for name in re.findall(r"\bvirtcaps_[a-z0-9_]+", expr):
        used.setdefault(name, "virtcaps-fleet.json")
unknown = sorted(f"{n} ({w})" for n, w in used.items() if n not in families and not n.startswith("virtcaps_expect"))
check(f"the {len(used)} metric names the alert rules and the dashboard use are families in docs/metrics.md",
      not unknown, unknown)

print(f"check_deploy.py: {failures} failure(s)")
sys.exit(1 if failures else 0)
