#!/usr/bin/env bash
# Build and install pyfuse3 3.5.0 with pyjuicefs's patch (third_party/pyfuse3/): it adds the FUSE
# flock/getlk/setlk/fallocate/copy_file_range handlers that pyjuicefs needs for file locks held in
# the metadata engine (they exclude across mounts and hosts). See docs/dev/fuse.md.
#
# Idempotent: if the installed pyfuse3 already has the handlers, nothing is done (FORCE=1 rebuilds).
# Needs libfuse3-dev, pkg-config and a C compiler (scripts/install-deps.sh installs them) and access
# to the package index (the sdist and the build dependencies come from it).
set -euo pipefail

PYTHON=${PYTHON:-python3}
PYFUSE3_VERSION=3.5.0
# sha256 of pyfuse3-3.5.0.tar.gz on PyPI: pip refuses anything else.
PYFUSE3_SHA256=88399a9494b88603230bba300f4ba9ad63fece5ed514ca3633d555a0c6a42b24
CYTHON_VERSION=3.2.4            # the Cython that generated the released sdist's C code
LOCAL_VERSION="${PYFUSE3_VERSION}+pyjuicefs.1"  # bump when the patch changes

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
patch_dir="$here/third_party/pyfuse3"

is_patched() {
  "$PYTHON" - "$LOCAL_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
import pyfuse3
ok = hasattr(pyfuse3.Operations, "flock") and hasattr(pyfuse3, "FileLock")
sys.exit(0 if ok and version("pyfuse3") == sys.argv[1] else 1)
EOF
}

if [[ "${FORCE:-0}" != 1 ]] && is_patched; then
  echo "build-pyfuse3: pyfuse3 $LOCAL_VERSION already installed"
  exit 0
fi

for tool in pkg-config patch cc; do
  command -v "$tool" >/dev/null || { echo "build-pyfuse3: $tool is missing (apt-get install pkg-config patch gcc)" >&2; exit 1; }
done
pkg-config --atleast-version=3.4.0 fuse3 \
  || { echo "build-pyfuse3: libfuse3-dev >= 3.4 is missing (run scripts/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d -t pyfuse3-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "build-pyfuse3: building pyfuse3 $LOCAL_VERSION in $work"
echo "pyfuse3==$PYFUSE3_VERSION --hash=sha256:$PYFUSE3_SHA256" > "$work/req.txt"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: --require-hashes -r "$work/req.txt" -d "$work"
tar -xzf "$work/pyfuse3-$PYFUSE3_VERSION.tar.gz" -C "$work"
src="$work/pyfuse3-$PYFUSE3_VERSION"
for p in "$patch_dir"/*.patch; do
  patch -s -p1 -d "$src" < "$p"
done
# The sdist ships C code generated from the unpatched .pyx: drop it so Cython regenerates it.
rm -f "$src/src/pyfuse3/__init__.c"

# pip builds in an isolated environment (with pyfuse3's own build requirements); the constraint
# pins the Cython pip installs there (PIP_CONSTRAINT for pip < 25.3, PIP_BUILD_CONSTRAINT after).
# The local version (+pyjuicefs.N) marks the build and still satisfies `pyfuse3>=3.3`.
echo "cython==$CYTHON_VERSION" > "$work/constraints.txt"
PIP_CONSTRAINT="$work/constraints.txt" PIP_BUILD_CONSTRAINT="$work/constraints.txt" \
  SETUPTOOLS_SCM_PRETEND_VERSION="$LOCAL_VERSION" \
  "$PYTHON" -m pip wheel -q --no-deps -w "$work/dist" "$src"
"$PYTHON" -m pip install -q --no-deps --force-reinstall "$work"/dist/pyfuse3-*.whl

if ! is_patched; then
  echo "build-pyfuse3: the installed pyfuse3 lacks the patched handlers" >&2
  exit 1
fi
echo "build-pyfuse3: installed pyfuse3 $LOCAL_VERSION"
