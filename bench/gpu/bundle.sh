#!/usr/bin/env bash
# Builds the full `pgkm` here (CUDA for sm_90, no MPI) and gathers it with every shared
# library it needs beyond the C/C++ runtime and the GPU driver into bench/gpu/bundle/, so
# that check.sh's end-to-end step can run on a device machine that has no HDF5, yaml-cpp
# or nlohmann_json to build it there. The bundle is ignored by git; name it in the device
# tool's `carry`:
#
#   bash bench/gpu/bundle.sh                  # here, once (a few minutes on 2 cores)
#   run(command="bash bench/gpu/check.sh", carry=["bench/gpu/bundle"], timeout_s=540)
#
# Why carry a binary rather than .deb files: libhdf5 alone pulls in about 30 libraries
# (curl, TLS, Kerberos, LDAP) whose sonames differ between distributions; the loader
# resolves a carried binary's own copies first (LD_LIBRARY_PATH), and glibc and libstdc++
# are newer on the device image than here, so what is built here should run there (not yet
# tried: no GPU machine has been lent to this work).
# Left out on purpose: glibc (libc, libm, libdl, librt, libpthread, ld-linux), libstdc++
# and libgcc_s (the device's are newer) and libcuda (the driver's own).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${PGKM_BUNDLE_BUILD:-$root/build-gpu-bundle}
bundle=$root/bench/gpu/bundle

configure=$(cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DPGKM_BUILD_TESTS=OFF -DPGKM_BUILD_BENCH=OFF -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON)
if ! grep -q 'pgkm: CUDA toolkit found: ON' <<< "$configure"; then
  echo "bundle.sh: no CUDA toolkit found; a bundle without the CUDA backend is no use on a GPU" >&2
  exit 1
fi
cmake --build "$build" -j"$(nproc)" --target pgkm

rm -rf "$bundle.tmp"
mkdir -p "$bundle.tmp/lib"
cp "$build/launch/pgkm" "$bundle.tmp/pgkm"
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libstdc\+\+|libgcc_s|libcuda\.so)'
ldd "$build/launch/pgkm" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' |
  while read -r name path; do
    if [[ ! $name =~ $skip ]]; then
      cp -L "$path" "$bundle.tmp/lib/$name"
    fi
  done
{
  echo "built $(date -u +%FT%TZ) from $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo '+dirty')"
  echo "on $(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -1)"
  echo "cuda: $("$(grep -m1 "^CMAKE_CUDA_COMPILER:" "$build/CMakeCache.txt" | cut -d= -f2)" --version | tail -1)"
} > "$bundle.tmp/BUILD_INFO"
rm -rf "$bundle"
mv "$bundle.tmp" "$bundle"
echo "bench/gpu/bundle: $(du -sh "$bundle" | cut -f1), $(ls "$bundle/lib" | wc -l) libraries"
cat "$bundle/BUILD_INFO"
if ! LD_LIBRARY_PATH=$bundle/lib "$bundle/pgkm" --version > /dev/null 2>&1 &&
  ! LD_LIBRARY_PATH=$bundle/lib "$bundle/pgkm" --help > /dev/null 2>&1; then
  echo "bundle.sh: the bundled pgkm does not start here" >&2
  exit 1
fi
