#!/bin/sh
# Install what lakefs needs to build and test, idempotently: apt-get update at
# most once, then apt-get install only the packages that are missing. Node.js
# and npm come with the machine image and are never installed from Debian.
set -eu
pkgs="build-essential pkg-config libfuse3-dev fuse3 libleveldb-dev libzstd-dev
      libssl-dev libcurl4-openssl-dev libxml2-dev libsqlite3-dev sqlite3
      rsync git perl python3 groff-base man-db attr psmisc procps xz-utils"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "lakefs: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "lakefs: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
