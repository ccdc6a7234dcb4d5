#!/usr/bin/env bash
# Installs the Debian packages pli's tests need, only those missing, without
# prompting and without starting system services. Needs root (CI and dev machines).
set -euo pipefail
# slapd + ldap-utils: the LDAP directory tests; libldap2-dev + libsasl2-dev: python-ldap builds;
# softhsm2: the PKCS#11 (HSM) key tests; isync: mbsync, a real IMAP sync client
want=(postgresql openssl swaks libnet-ssleay-perl libio-socket-ssl-perl ca-certificates
      slapd ldap-utils libldap2-dev libsasl2-dev softhsm2 isync)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "apt-deps: missing packages ${missing[*]}; run as root (or install them)" >&2
  exit 1
fi
echo "apt-deps: installing ${missing[*]}" >&2
# Keep package scripts from starting a system-wide PostgreSQL: tests start their own.
rcd=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$rcd" ]; then printf '#!/bin/sh\nexit 101\n' > "$rcd"; chmod +x "$rcd"; created=1; fi
trap '[ $created -eq 1 ] && rm -f "$rcd"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
