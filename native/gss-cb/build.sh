#!/bin/sh
# Builds impp's optional GSS-API channel-binding addon (GS2-KRB5-PLUS) against the system
# libgssapi_krb5. Needs: libkrb5-dev (krb5-config), a C++ compiler, node-addon-api in
# node_modules. Uses npm's bundled node-gyp, and the Debian nodejs headers when present (no
# download). Without this addon impp still runs; Kerberos logins are then GS2-KRB5 only.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$gyp" ] || gyp="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js"
# Use the headers of the running Node when they are installed next to it (Debian's nodejs, the
# official tarballs); otherwise node-gyp downloads them.
prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
nodedir=""
[ -f "$prefix/include/node/node_api.h" ] && nodedir="--nodedir=$prefix"
cd "$here"
# Up to date already: nothing to do (npm test calls this on every run).
if [ -f build/Release/impp_gss_cb.node ] && [ build/Release/impp_gss_cb.node -nt gss_cb.cc ] && [ build/Release/impp_gss_cb.node -nt binding.gyp ]; then
  exit 0
fi
# shellcheck disable=SC2086
node "$gyp" rebuild $nodedir
