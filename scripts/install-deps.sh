#!/usr/bin/env bash
# Installs the Debian 12 packages that building, `make run` and `make test`
# need, and only those that are missing: with everything present it prints
# nothing and changes nothing. Run as root to install; as another user it
# prints the apt-get command to run and fails. Go is not a Debian package
# here: it must already be on PATH (or in /usr/local/go/bin).
set -euo pipefail

readonly PACKAGES=(
  build-essential cmake ninja-build pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  # libcurl4-openssl-dev: its libcurl4 (7.88.1) has HTTP/2 through
  # libnghttp2-14, a hard dependency: https providers share connections.
  libabsl-dev libpqxx-dev libssl-dev libargon2-dev libcurl4-openssl-dev
  # The services' allocator (CMakeLists.txt, chat_use_service_allocator).
  libmimalloc-dev
  libgtest-dev libgmock-dev
  postgresql-15 postgresql-contrib
  openssl clang-format
  # make test-sanitize and make fuzz: clang with its sanitizer and libFuzzer
  # runtimes.
  clang-14 libclang-rt-14-dev
  # scripts/run.sh polls /readyz with it, and its banner's examples use it.
  curl
  # The browser client's tests (web/tests) drive Debian's Chromium headless.
  chromium
  # tests/e2e's OpenAPI fuzz test: schemathesis in a venv of its own
  # (scripts/openapi-fuzz-venv.sh, tests/openapi/requirements.txt).
  python3 python3-venv
)
# The browser client (web/) is built with node and npm: Debian's, unless a
# node with npm is already on PATH (e.g. NodeSource's nodejs, which bundles
# npm and conflicts with Debian's npm package).
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
installed=" $(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null |
  awk '$2 == "installed" { printf "%s ", $1 }' || true)"
for package in "${PACKAGES[@]}"; do
  [[ "$installed" == *" $package "* ]] || missing+=("$package")
done

if ((${#missing[@]} > 0)); then
  if ((EUID != 0)); then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-deps: install them as root with:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Vite and Playwright need node 18 or newer (Debian 12 has 18).
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' 2>/dev/null; then
  echo "install-deps: node $(node --version 2>/dev/null || echo "(none)") is too old for web/: it needs node 18 or newer" >&2
  exit 1
fi

if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then
    echo "install-deps: go is in /usr/local/go/bin but not on PATH; run: export PATH=\$PATH:/usr/local/go/bin" >&2
  else
    echo "install-deps: the Go toolchain (go) is not installed; the gateway and the end-to-end tests need it. Install Go 1.24 or newer from https://go.dev/dl/ and put it on PATH." >&2
  fi
  exit 1
fi
