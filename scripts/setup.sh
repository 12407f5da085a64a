#!/usr/bin/env bash
# Installs what Wattbench's build, demo and tests need on a fresh Debian machine. Idempotent: each
# step checks first. Usage: scripts/setup.sh [base] [e2e] [ssh] [slurm] [all]
set -euo pipefail
cd "$(dirname "$0")/.."

CODE_SERVER_VERSION=4.100.3
TOOLS="${WATTBENCH_TOOLS:-$HOME/.cache/wattbench-dev}"
want=" ${*:-base} "
[[ $want == *" all "* ]] && want=" base e2e ssh slurm "

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

apt_packages=()
need() { command -v "$1" >/dev/null 2>&1 || { [[ $1 == /* ]] && [ -e "$1" ]; } || apt_packages+=("$2"); }
need python3 python3
need cc gcc
if [[ $want == *" e2e "* ]]; then
  need chromium chromium; need rg ripgrep; need make make; need g++ g++
  # code-server's kerberos module compiles against GSSAPI; not every Debian image has its headers.
  need /usr/include/gssapi/gssapi.h libkrb5-dev
fi
if [[ $want == *" ssh "* || $want == *" e2e "* ]]; then need /usr/sbin/sshd openssh-server; need ssh-keygen openssh-client; fi
if [[ $want == *" slurm "* ]]; then need slurmctld slurmctld; need slurmd slurmd; need sbatch slurm-client; need munged munge; fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${apt_packages[*]} — run as root, or: sudo apt-get install -y ${apt_packages[*]}" >&2
    exit 1
  fi
  log "apt-get install ${apt_packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [[ $want == *" e2e "* ]]; then
  cs_dir="$TOOLS/code-server-$CODE_SERVER_VERSION"
  if [ ! -f "$cs_dir/node_modules/code-server/out/node/entry.js" ]; then
    log "installing code-server $CODE_SERVER_VERSION into $cs_dir (about a minute)"
    rm -rf "$cs_dir" && mkdir -p "$cs_dir/tmp/vscode-ripgrep-cache-1.15.11"
    # @vscode/ripgrep would fetch rg from GitHub; give it Debian's from its download cache instead.
    tar czf "$cs_dir/tmp/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg
    echo '{"name":"wattbench-code-server","private":true}' > "$cs_dir/package.json"
    (cd "$cs_dir" && TMPDIR="$cs_dir/tmp" npm_config_yes=true npm_config_unsafe_perm=true \
      npm install "code-server@$CODE_SERVER_VERSION" --no-audit --no-fund --loglevel=error) \
      || { echo "setup: code-server install failed" >&2; exit 1; }
  fi
fi
log "ready (${want# })"
