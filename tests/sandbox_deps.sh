#!/bin/sh
# Install bubblewrap (the grading sandbox, nnlab.course.sandbox) when it is missing; fail clearly when we cannot.
set -e
if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "sandbox_deps: bubblewrap (bwrap) is missing and this is not root: ask for 'apt-get install bubblewrap'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "sandbox_deps: bubblewrap (bwrap) is missing and there is no apt-get: install it with the system's package manager" >&2
    exit 1
fi
apt-get install -y bubblewrap >/dev/null || { apt-get update >/dev/null && apt-get install -y bubblewrap >/dev/null; } || {
    echo "sandbox_deps: apt-get install bubblewrap failed" >&2
    exit 1
}
command -v bwrap >/dev/null
