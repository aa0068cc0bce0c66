#!/usr/bin/env bash
# Install the Debian packages the test suite needs, only when missing (a fresh machine has none of them).
# PostgreSQL: the storage tests start a throwaway cluster of a real server on a loopback port.
set -euo pipefail

missing=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  missing+=(postgresql)
fi
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# poppler: the PDF certificate tests extract its text and render page 1 back to a QR
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
# SoftHSM2: the PKCS#11 tests initialise a throwaway token (tests/softhsm.py); CI must never skip them
softhsm_module=$(ls /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so 2>/dev/null | head -n 1 || true)
if ! command -v softhsm2-util >/dev/null 2>&1 || [ -z "$softhsm_module" ]; then
  missing+=(softhsm2)
fi
# chromium: the officer page is tested end to end in Debian's headless Chromium (Playwright drives it;
# no browser is downloaded by Playwright itself)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# node + npm: certlogic-js (npm, pinned by tests/oracles/certlogic/package-lock.json) is the CertLogic oracle;
# Node.js is also the ECMA-262 oracle for JSON Schema patterns (tests/adversarial/test_schema_semantics.py)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # the Debian package starts its own cluster; the tests use their own throwaway clusters instead
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do pg_ctlcluster "$ver" "$name" stop || true; done
  fi
fi
