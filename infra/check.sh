#!/usr/bin/env bash
# Checks the Terraform module offline: `terraform fmt -check`, `init` + `validate` of the module and the
# example root, and `terraform test` (plan-and-apply assertions against a mocked AWS provider).
#
# Terraform and the hashicorp/aws provider come from the machine: no registry is reachable here. The
# provider is taken from a filesystem mirror (a folder named registry.terraform.io; set
# TIDELAKE_TF_MIRROR to the folder that holds it). Without terraform, or without a mirror, the check
# says so and skips.
#
# Environment:
#   TIDELAKE_CACHE       cache folder kept across runs (default: ~/.cache/tidelake)
#   TIDELAKE_TF_MIRROR   provider mirror (default: searched for under /opt, /usr/share, $HOME)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
log() { echo "check.sh: $*" >&2; }

if ! command -v terraform >/dev/null; then
  log "terraform is not installed: skipping the Terraform checks"
  exit 0
fi
mirror="${TIDELAKE_TF_MIRROR:-}"
if [ -z "$mirror" ]; then
  found="$(find /opt /usr/share /usr/local/share "$HOME" -maxdepth 5 -type d -name registry.terraform.io 2>/dev/null | head -n 1 || true)"
  [ -n "$found" ] && mirror="$(dirname "$found")"
fi
if [ -z "$mirror" ] || [ ! -d "$mirror/registry.terraform.io/hashicorp/aws" ]; then
  log "no filesystem mirror of the hashicorp/aws provider found: skipping the Terraform checks"
  exit 0
fi

mkdir -p "$cache/terraform"
export TF_CLI_CONFIG_FILE="$cache/terraform/cli.tfrc"
cat >"$TF_CLI_CONFIG_FILE" <<CONFIG
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
CONFIG
export TF_IN_AUTOMATION=1

log "$(terraform version | head -n 1), provider mirror $mirror"
terraform fmt -check -recursive "$here/terraform"
for dir in modules/tidelake example; do
  export TF_DATA_DIR="$cache/terraform/data-${dir//\//-}"
  (cd "$here/terraform/$dir" && terraform init -backend=false -input=false -no-color >/dev/null && terraform validate -no-color)
done
export TF_DATA_DIR="$cache/terraform/data-modules-tidelake"
(cd "$here/terraform/modules/tidelake" && terraform test -no-color)
