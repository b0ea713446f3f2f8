#!/usr/bin/env bash
# Vendors the console's third-party JavaScript from the npm registry, pinned, with its licence
# and a SHA-256 sum beside it. The files are committed, so building or running iog never needs
# npm; run this only to change a pinned version.
#
#   internal/web/assets/vendor.sh          fetch the pinned packages (npm pack) and rewrite the files
#   internal/web/assets/vendor.sh --check  verify the committed files against vendor/SHA256SUMS
#
# npm pack checks each tarball against the registry's sha512 integrity; the sums written here
# let anyone check the committed copies without the network.
set -euo pipefail
cd "$(dirname "$0")/vendor"

# name@version  file-in-package  committed-name
PKGS=(
  "htmx.org@2.0.11 dist/htmx.min.js htmx.min.js"
)

if [ "${1:-}" = "--check" ]; then
  sha256sum --check --strict SHA256SUMS
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/sums"
for entry in "${PKGS[@]}"; do
  read -r spec file out <<<"$entry"
  name=${spec%@*}
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  mkdir -p "$tmp/x"
  tar -xzf "$tgz" -C "$tmp/x"
  cp "$tmp/x/package/$file" "$out"
  cp "$tmp/x/package/LICENSE" "$out.LICENSE"
  printf '%s %s\n' "$spec" "$(sha256sum "$tgz" | cut -d' ' -f1)" >>"$tmp/tarballs"
  sha256sum "$out" "$out.LICENSE" >>"$tmp/sums"
  rm -rf "$tmp/x" "$tgz"
  echo "vendored $spec ($name): $out"
done
cp "$tmp/sums" SHA256SUMS
cp "$tmp/tarballs" TARBALLS
