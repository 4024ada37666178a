#!/bin/sh
# Install what lakefs needs to build and test, idempotently: apt-get update at
# most once, then apt-get install only the packages that are missing, and
# the tests' npm packages (tests/package.json: s3rver, @duckdb/node-api) when
# tests/node_modules lacks any of them. Node.js and npm come with the machine
# image and are never installed from Debian.
set -eu
pkgs="build-essential pkg-config libfuse3-dev fuse3 libleveldb-dev libzstd-dev libxxhash-dev
      libssl-dev libcurl4-openssl-dev libxml2-dev libsqlite3-dev sqlite3 zlib1g-dev
      rsync git perl python3 groff-base man-db attr psmisc procps xz-utils
      zstd gzip curl"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "lakefs: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
		exit 1
	fi
	echo "lakefs: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The tests' npm packages, as pinned by tests/package.json (node_modules
# stays out of git): s3rver, the S3 server of the S3 client's tests, and
# @duckdb/node-api, the DuckDB the silver readers' test reads with. npm
# install runs when any dependency of tests/package.json lacks its
# package.json under tests/node_modules, not only s3rver. Without them
# those tests skip; a failed install does not stop the rest.
top=$(cd "$(dirname "$0")/.." && pwd)
npm_missing=""
for d in $(sed -n '/"dependencies"/,/}/s/^ *"\([^"]*\)": *"[^"]*",\{0,1\} *$/\1/p' \
		"$top/tests/package.json"); do
	[ -f "$top/tests/node_modules/$d/package.json" ] || npm_missing="$npm_missing $d"
done
if [ -n "$npm_missing" ]; then
	if command -v npm >/dev/null 2>&1; then
		echo "lakefs: installing$npm_missing for the tests (npm install --prefix tests)" >&2
		npm install --prefix "$top/tests" --no-audit --no-fund >/dev/null ||
			echo "lakefs: npm install failed: the tests that need$npm_missing will skip" >&2
	else
		echo "lakefs: npm not found: the tests that need$npm_missing will skip" >&2
	fi
fi
exit 0
