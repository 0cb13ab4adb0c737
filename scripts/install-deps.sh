#!/usr/bin/env bash
# install-deps.sh GROUP... : installs the Debian packages a group needs, only those missing.
#   release  the static musl build of the dependencies (scripts/deps.sh)
#   dev      the glibc ASan+UBSan build against Debian's -dev packages
#   test     unit, black-box, PID-1 and fuzz tests
#   bench    the benchmark table (busybox-static: figure 1's baseline; openssh-server, openssh-client and
#            websocketd: the baselines of 7c-d, 10c-e, 11c-e and 9c; installing openssh-server starts the
#            system's sshd where services may start: the bench runs a private one of its own)
set -euo pipefail

declare -A GROUP=(
	[release]="musl-tools musl-dev cmake make gcc g++ dpkg-dev autoconf automake libtool pkg-config
	           linux-libc-dev ca-certificates debian-archive-keyring xz-utils patch file"
	[dev]="cmake make gcc pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev libmsgpack-dev
	       libinotifytools0-dev"
	[test]="python3 python3-pytest python3-websockets python3-msgpack busybox-static util-linux file
	        clang libclang-rt-14-dev procps"
	[bench]="gcc procps busybox-static openssh-server openssh-client websocketd"
)

wanted=()
for g in "$@"; do
	[[ -n "${GROUP[$g]:-}" ]] || { echo "install-deps: unknown group '$g'" >&2; exit 2; }
	wanted+=(${GROUP[$g]})
done

missing=()
for p in "${wanted[@]}"; do
	dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
if [[ $EUID -ne 0 ]]; then
	echo "install-deps: missing Debian packages (run as root, or install them): ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
