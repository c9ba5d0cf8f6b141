"""Runs k8s/statefulset.yaml's container, as written, in Docker.

No Kubernetes cluster can start on the test machine, so this plays the
kubelet's part for what the binary sees: the manifest's exact command, args,
env (secretKeyRef and fieldRef filled in), user and group, read-only root
filesystem, dropped capabilities, no privilege escalation, memory and CPU
limits, and a volume on each volumeMount; then it asks every probe on the
manifest's path and port as the kubelet would (Host: the pod's IP), checks
the declared ports are the ones the node listens on, sends a message across
the pods through the sidecar with the Secret's token, and stops a pod within
terminationGracePeriodSeconds. A manifest that drifts from the binary fails.

Usage: python3 k8s_in_docker.py IMAGE K8S_DIR   (exit 0 when all passed)
"""

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

PODS = 3


class Failure(Exception):
    pass


def log(msg):
    print(f"--- {msg}", file=sys.stderr, flush=True)


def docker(*args, check=True, timeout=120):
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise Failure(f"docker {' '.join(args[:3])}... failed: {r.stderr.strip()}")
    return r.stdout.strip()


def load_all(k8s_dir):
    docs = {}
    for name in sorted(os.listdir(k8s_dir)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(k8s_dir, name)) as f:
                docs[name] = [d for d in yaml.safe_load_all(f) if d]
    return docs


def check_kustomization(k8s_dir, docs):
    kust = docs.get("kustomization.yaml")
    if not kust:
        raise Failure("k8s/kustomization.yaml is missing")
    listed = set(kust[0].get("resources", []))
    present = {n for n in docs if n != "kustomization.yaml"}
    if listed != present:
        raise Failure(f"kustomization resources {sorted(listed)} != files {sorted(present)}")


def find(docs, kind, name=None):
    for file_docs in docs.values():
        for d in file_docs:
            if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
                return d
    raise Failure(f"no {kind} {name or ''} in k8s/")


def memory_bytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|M|G)?", str(q))
    if not m:
        raise Failure(f"unsupported memory quantity {q!r}")
    mult = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}
    return int(m.group(1)) * mult[m.group(2)]


def cpus(q):
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def http(url, host=None, token=None, method="GET", body=None, timeout=3):
    req = urllib.request.Request(url, method=method, data=body)
    if host:
        req.add_header("Host", host)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def wait(what, limit, fn):
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        ok, last = fn()
        if ok:
            return last
        time.sleep(0.5)
    raise Failure(f"timed out after {limit} s waiting for {what} (last: {last})")


def main():
    image, k8s_dir = sys.argv[1], sys.argv[2]
    docs = load_all(k8s_dir)
    check_kustomization(k8s_dir, docs)
    sts = find(docs, "StatefulSet")
    name = sts["metadata"]["name"]
    service = sts["spec"]["serviceName"]
    headless = find(docs, "Service", service)
    if headless["spec"].get("clusterIP") != "None":
        raise Failure(f"Service {service} (the StatefulSet's serviceName) is not headless")
    pod = sts["spec"]["template"]["spec"]
    (ctr,) = [c for c in pod["containers"] if c["name"] == "p2p-chat"]
    grace = pod.get("terminationGracePeriodSeconds", 30)

    # Named ports and what the Services point at.
    ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP")) for p in ctr["ports"]}
    for svc_file in docs.values():
        for d in svc_file:
            if d.get("kind") == "Service":
                for p in d["spec"]["ports"]:
                    tp = p.get("targetPort", p["port"])
                    if isinstance(tp, str) and tp not in ports:
                        raise Failure(f"Service {d['metadata']['name']} targets port {tp!r}, not declared by the container")
    selector = sts["spec"]["selector"]["matchLabels"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    for d in [headless, find(docs, "PodDisruptionBudget")]:
        sel = d["spec"].get("selector", {})
        sel = sel.get("matchLabels", sel)
        if not all(labels.get(k) == v for k, v in sel.items()):
            raise Failure(f"{d['kind']} {d['metadata']['name']} selector {sel} does not match the pods' labels {labels}")
    if not all(labels.get(k) == v for k, v in selector.items()):
        raise Failure("the StatefulSet's selector does not match its template's labels")

    # Security context: container settings override the pod's.
    psc, csc = pod.get("securityContext", {}), ctr.get("securityContext", {})
    sc = {**psc, **csc}
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup", 0)
    if sc.get("runAsNonRoot") is not True:
        raise Failure("runAsNonRoot is not set")
    if uid is None:
        user = docker("image", "inspect", "--format", "{{.Config.User}}", image)
        uid = int(user.split(":")[0])
    if int(uid) == 0:
        raise Failure("runAsUser is 0 but runAsNonRoot is set: the pod would not start")
    for key, want in [("readOnlyRootFilesystem", True), ("allowPrivilegeEscalation", False)]:
        if csc.get(key) is not want:
            raise Failure(f"container securityContext.{key} is not {want}")
    if csc.get("capabilities", {}).get("drop") != ["ALL"]:
        raise Failure("container capabilities do not drop ALL")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        raise Failure("seccompProfile is not RuntimeDefault")

    token = secrets.token_hex(24)
    env_of = lambda pod_name: env_list(ctr.get("env", []), pod_name, token)  # noqa: E731
    limits = ctr.get("resources", {}).get("limits", {})
    run = f"p2pchat-k8s-{os.getpid()}"
    net = f"{run}-net"
    containers, volumes = [], []
    try:
        docker("network", "create", net)
        for i in range(PODS):
            pod_name = f"{name}-{i}"
            cname = f"{run}-{pod_name}"
            args = ["run", "-d", "--name", cname, "--hostname", pod_name, "--network", net,
                    "--network-alias", f"{pod_name}.{service}", "--network-alias", pod_name,
                    "--user", f"{uid}:{gid}", "--cap-drop", "ALL",
                    "--security-opt", "no-new-privileges"]
            if csc.get("readOnlyRootFilesystem"):
                args.append("--read-only")
            if "memory" in limits:
                args += ["--memory", str(memory_bytes(limits["memory"]))]
            if "cpu" in limits:
                args += ["--cpus", str(cpus(limits["cpu"]))]
            for m in ctr.get("volumeMounts", []):
                vol = f"{cname}-{m['name']}"
                docker("volume", "create", vol)
                volumes.append(vol)
                args += ["-v", f"{vol}:{m['mountPath']}"]
            for k, v in env_of(pod_name):
                args += ["-e", f"{k}={v}"]
            command = ctr.get("command")
            rest = list(ctr.get("args", []))
            if command:
                args += ["--entrypoint", command[0]]
                rest = command[1:] + rest
            args += [image, *rest]
            docker(*args)
            containers.append(cname)
        log(f"{PODS} pods started as uid {uid}, read-only root: {' '.join(containers)}")

        ips = [docker("inspect", "--format", f"{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}", c)
               for c in containers]

        def probe_url(ip, probe):
            g = probe["httpGet"]
            port = g["port"]
            port = ports[port][0] if isinstance(port, str) else port
            return f"http://{ip}:{port}{g['path']}", f"{ip}:{port}"

        for kind in ["startupProbe", "livenessProbe", "readinessProbe"]:
            probe = ctr.get(kind)
            if not probe or "httpGet" not in probe:
                raise Failure(f"{kind} is missing or not an httpGet probe")
            limit = probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
            limit = max(limit, 30)
            for ip, c in zip(ips, containers):
                url, host = probe_url(ip, probe)

                def ok(url=url, host=host):
                    status, body = http(url, host=host, timeout=probe.get("timeoutSeconds", 1))
                    return status is not None and 200 <= status < 400, f"{status} {body[:200]}"

                wait(f"{kind} {url} on {c}", limit, ok)
            log(f"{kind} {probe['httpGet']['path']} on port {probe['httpGet']['port']}: 200 on every pod")

        # Pod 0's --dial names itself: the node must skip it, not wait for it.
        http_port = ports["http"][0]
        base = [f"http://{ip}:{http_port}" for ip in ips]
        status, body = http(f"{base[0]}/ready")
        detail = json.loads(body).get("detail", {})
        if status != 200 or detail.get("dial_targets") != 0:
            raise Failure(f"pod 0 should be ready with its dial to itself skipped: {status} {body}")
        logs = subprocess.run(["docker", "logs", containers[0]], capture_output=True, text=True)
        if "is this node itself (its host name and port); not dialing it" not in logs.stdout + logs.stderr:
            raise Failure("pod 0 did not log that it skips the dial to itself")
        for i in range(1, PODS):
            status, body = http(f"{base[i]}/ready")
            detail = json.loads(body).get("detail", {})
            if status != 200 or detail.get("dial_connected", 0) < 1:
                raise Failure(f"pod {i} is not ready and connected to pod 0: {status} {body}")
        log("pod 0 skipped its dial to itself; pods 1.. are connected to pod 0")

        # The declared p2p ports are the ones the node listens on.
        status, body = http(f"{base[0]}/status")
        listen = json.loads(body)["listen_addrs"]
        if json.loads(body).get("relay_server") is None:
            raise Failure(f"pod 0 does not serve as a relay: {body}")
        for pname, (port, proto) in ports.items():
            if pname == "http":
                continue
            want = f"/tcp/{port}" if proto == "TCP" else f"/udp/{port}/quic-v1"
            if not any(want in a for a in listen):
                raise Failure(f"container port {pname} {port}/{proto} is not one the node listens on: {listen}")
        log(f"declared ports {sorted(ports)} match the node's listen addresses")

        # Host names from P2P_CHAT_HTTP_ALLOWED_HOSTS are answered; others not.
        allowed = dict(env_of(f"{name}-0")).get("P2P_CHAT_HTTP_ALLOWED_HOSTS", "")
        for h in [x for x in allowed.split(",") if x]:
            status, body = http(f"{base[0]}/health", host=f"{h}:{http_port}")
            if status != 200:
                raise Failure(f"Host {h} listed in P2P_CHAT_HTTP_ALLOWED_HOSTS got {status}: {body}")
        status, _ = http(f"{base[0]}/health", host="attacker.example")
        if status != 400:
            raise Failure(f"a foreign Host header got {status}, expected 400")

        # A message across pods, with the Secret's token.
        text = f"k8s-hello-{secrets.token_hex(4)}"
        status, body = http(f"{base[PODS - 1]}/rooms/lobby/messages", token=token, method="POST",
                            body=json.dumps({"text": text}).encode())
        if status != 202:
            raise Failure(f"POST on pod {PODS - 1} got {status}: {body}")

        def arrived():
            status, body = http(f"{base[1]}/rooms/lobby/messages?limit=1000", token=token)
            return status == 200 and f'"text":"{text}"' in body, f"{status} {body[:200]}"

        wait(f"the message from pod {PODS - 1} at pod 1", 30, arrived)
        log(f"a message sent on pod {PODS - 1} arrived at pod 1")

        # Stopping within the grace period, cleanly.
        start = time.monotonic()
        docker("stop", "--time", str(grace), containers[1], timeout=grace + 30)
        took = time.monotonic() - start
        code = docker("inspect", "--format", "{{.State.ExitCode}}", containers[1])
        if code != "0" or took >= grace:
            raise Failure(f"pod 1 stopped with exit code {code} after {took:.1f} s (grace {grace} s)")
        log(f"pod 1 stopped cleanly in {took:.1f} s (terminationGracePeriodSeconds {grace})")
    except Failure:
        for c in containers:
            logs = subprocess.run(["docker", "logs", "--tail", "15", c], capture_output=True, text=True)
            print(f"=== last log lines of {c}:\n{logs.stdout}{logs.stderr}", file=sys.stderr)
        raise
    finally:
        for c in containers:
            subprocess.run(["docker", "rm", "-f", "-v", c], capture_output=True)
        for v in volumes:
            subprocess.run(["docker", "volume", "rm", "-f", v], capture_output=True)
        subprocess.run(["docker", "network", "rm", net], capture_output=True)


def env_list(env, pod_name, token):
    out = []
    for e in env:
        if "value" in e:
            out.append((e["name"], str(e["value"])))
            continue
        src = e.get("valueFrom", {})
        if src.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            out.append((e["name"], pod_name))
        elif "secretKeyRef" in src:
            out.append((e["name"], token))
        else:
            raise Failure(f"env {e['name']}: unsupported source {src}")
    return out


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
