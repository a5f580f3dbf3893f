#!/usr/bin/env bash
# Checks deploy/ without a container engine:
#  1. every YAML file parses (python3 + PyYAML, when available);
#  2. hadolint (Dockerfile) and kubeconform (k8s manifests), when installed;
#  3. the contract test: the env of the Dockerfile, compose.yaml and the k8s ConfigMap/Secret
#     is made of known settings and starts the real binary (/livez, /readyz), the k8s one in
#     the production profile (crates/server/tests/api/deploy_contract.rs, also part of cargo test).
set -euo pipefail
cd "$(dirname "$0")/.."

if python3 -c 'import yaml' 2>/dev/null; then
  python3 - <<'PY'
import glob, yaml
files = sorted(glob.glob("deploy/*.y*ml") + glob.glob("deploy/k8s/*.y*ml"))
for f in files:
    with open(f) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d is not None]
    print(f"yaml ok: {f} ({len(docs)} document(s))")
PY
else
  echo "python3 with PyYAML not found: YAML syntax not checked" >&2
fi

if command -v hadolint >/dev/null 2>&1; then
  hadolint deploy/Dockerfile
else
  echo "hadolint not installed: Dockerfile lint skipped" >&2
fi

if command -v kubeconform >/dev/null 2>&1; then
  kubeconform -strict -summary deploy/k8s/*.yaml
else
  echo "kubeconform not installed: Kubernetes schema check skipped" >&2
fi

cargo test -p portal-server --test api deploy_contract "$@"
