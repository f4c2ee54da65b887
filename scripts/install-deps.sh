#!/usr/bin/env bash
# Install the Debian packages pyjuicefs and its tests use: FUSE, and the servers the test harness
# starts on loopback (it never uses the system services). Idempotent and quick when all are present:
# apt-get update runs only when something is missing.
set -euo pipefail

# gcc, patch and python3-dev build the patched pyfuse3 (scripts/build-pyfuse3.sh).
PACKAGES=(fuse3 libfuse3-dev pkg-config gcc patch python3-dev redis-server postgresql mariadb-server
          etcd-server sqlite3 iproute2 util-linux)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: system packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q "${missing[@]}"
