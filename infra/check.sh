#!/usr/bin/env bash
# Checks the Terraform module offline.
#
#   infra/check.sh              `terraform fmt -check`, `init` + `validate` of the module and the example
#                               root, and `terraform test` (assertions against a mocked AWS provider)
#   infra/check.sh apply DIST   `terraform apply` of the example root against the local AWS API endpoint
#                               (moto's server, started by infra/s3.sh) with the zips `tidelake package
#                               --out DIST` wrote, checks what the endpoint then holds
#                               (infra/terraform/example/verify.py), and destroys it again
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
mode="${1:-static}"
case "$mode" in
  static) ;;
  apply) dist="$(cd "${2:?usage: infra/check.sh apply DIST}" && pwd)" ;;
  *) log "unknown mode $mode (static, apply DIST)"; exit 2 ;;
esac

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
init() {
  export TF_DATA_DIR="$cache/terraform/data-${1//\//-}"
  (cd "$here/terraform/$1" && terraform init -backend=false -input=false -no-color >/dev/null)
}

if [ "$mode" = static ]; then
  terraform fmt -check -recursive "$here/terraform"
  for dir in modules/tidelake example; do
    init "$dir"
    (cd "$here/terraform/$dir" && terraform validate -no-color)
  done
  init modules/tidelake
  (cd "$here/terraform/modules/tidelake" && terraform test -no-color)
  exit 0
fi

# apply: the example root against the local endpoint, with the Kafka event source mapping left out
# (nothing there polls Kafka), in a state file of its own that is destroyed at the end.
endpoint="$("$here/s3.sh" start)"
python="$("$here/python.sh")"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
bucket="tidelake-check-$(date +%s)-$$"
state="$(mktemp -d)"
vars=(-var "aws_endpoint=$endpoint" -var kafka_event_source=false -var "lake_bucket=$bucket" -var "dist=$dist")
destroy() {
  (cd "$here/terraform/example" && terraform destroy -auto-approve -input=false -no-color -state="$state/terraform.tfstate" "${vars[@]}" >/dev/null) ||
    log "destroy failed; state left in $state"
}
trap destroy EXIT
init example
log "applying the example root against $endpoint (bucket $bucket)"
(cd "$here/terraform/example" && terraform apply -auto-approve -input=false -no-color -state="$state/terraform.tfstate" "${vars[@]}" |
  grep -E '^(Apply complete|Error|│)' >&2)
"$python" "$here/terraform/example/verify.py" "$endpoint" "$bucket" "$dist"
