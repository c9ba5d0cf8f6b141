#!/usr/bin/env bash
# The Kubernetes manifests (k8s/): (a) every manifest validated against the
# Kubernetes API schemas bundled with kubernetes-validate (offline, strict:
# unknown fields fail), (b) the StatefulSet's container run in Docker exactly
# as written, its probes asked on their paths and ports, a message across
# pods (tests/ship/k8s_in_docker.py). Builds the image only if it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/ship/lib.sh
. tests/ship/lib.sh

K8S_VERSION=1.33.0 # the API version validated against (kind's default node image era)
KUBERNETES_VALIDATE_VERSION=1.37.0
PYYAML_VERSION=6.0.3

need_docker
pip_tool "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "PyYAML==$PYYAML_VERSION"
bin=$(ship_venv)

manifests=()
for f in k8s/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
[ ${#manifests[@]} -gt 0 ] || fail "no manifests in k8s/"

note "schemas: ${manifests[*]} against Kubernetes $K8S_VERSION (strict, offline)"
# No network: the schemas must come from the package itself.
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); fi
"${offline[@]}" "$bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "${manifests[@]}" ||
    fail "a manifest does not match the Kubernetes $K8S_VERSION API schema"

# The validator must really reject a wrong manifest (a typo in a field name).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/' k8s/statefulset.yaml >"$tmp/typo.yaml"
if "${offline[@]}" "$bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "$tmp/typo.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate accepted a misspelt field: the schema check checks nothing"
fi

# The kustomization as kubectl applies it, where kubectl is installed (it is
# not a package this suite installs: the check above covers every file).
if command -v kubectl >/dev/null && timeout 60 kubectl kustomize k8s/ >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err"; then
    note "kubectl kustomize k8s/: the rendered resources against the schemas"
    "${offline[@]}" "$bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "$tmp/rendered.yaml" ||
        fail "the resources kubectl kustomize renders do not match the schema"
    kinds=$(grep -c '^kind:' "$tmp/rendered.yaml")
    [ "$kinds" = "${#manifests[@]}" ] || fail "kustomize renders $kinds resources, k8s/ has ${#manifests[@]}"
elif command -v kubectl >/dev/null; then
    fail "kubectl kustomize k8s/ failed: $(cat "$tmp/kustomize.err")"
else
    note "kubectl not installed: the kustomization is checked by tests/ship/k8s_in_docker.py only"
fi

ensure_image
note "the StatefulSet's container in Docker"
timeout 600 "$bin/python" tests/ship/k8s_in_docker.py "$IMAGE" k8s || fail "the manifest and the image disagree (above)"
echo "test-k8s: ok" >&2
