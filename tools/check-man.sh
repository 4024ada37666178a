#!/bin/sh
# tools/check-man.sh — lint every man page with groff's mdoc checks.
#
# Runs `groff -mdoc -ww -z` on each man/*.[0-9]; a clean page prints
# nothing. Any output (a warning or an error) fails the check, naming the
# page. Called by `make test`; run it from anywhere.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v groff >/dev/null 2>&1; then
	echo "check-man: groff not found (apt-get install groff-base)" >&2
	exit 1
fi
status=0
found=0
for page in "$top"/man/*.[0-9]; do
	[ -f "$page" ] || continue
	found=1
	out=$(groff -mdoc -ww -z "$page" 2>&1)
	rc=$?
	if [ -n "$out" ] || [ "$rc" -ne 0 ]; then
		echo "check-man: man/${page##*/}: groff -mdoc -ww -z reports:" >&2
		printf '%s\n' "$out" | sed 's/^/  /' >&2
		status=1
	fi
done
if [ "$found" -eq 0 ]; then
	echo "check-man: no man pages in $top/man" >&2
	exit 1
fi
[ "$status" -eq 0 ] && echo "check-man: man pages lint-clean"
exit "$status"
