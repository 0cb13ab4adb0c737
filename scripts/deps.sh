#!/usr/bin/env bash
# deps.sh - build runra-agent's static (musl) third-party libraries from
# Debian bookworm SOURCE packages.
#
#   scripts/deps.sh [BUILD_DIR]        (default: <repo>/build/deps)
#
# Produces $BUILD_DIR/prefix/{include,lib} with libev.a, libmsgpackc.a,
# libinotifytools.a and libwebsockets.a (libev compiled in), plus
# $BUILD_DIR/prefix/deps.env for the project's CMake.  Everything stays under
# BUILD_DIR; /etc/apt is never touched (apt runs with a private config).
#
# Debian packages needed: the 'release' group of scripts/install-deps.sh, which
# this script runs first (it installs what is missing when run as root).
set -euo pipefail

# ---------------------------------------------------------------- settings --
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT="$REPO/scripts/deps.sh"
BUILD_DIR=$(realpath -m "${1:-$REPO/build/deps}")
PREFIX="$BUILD_DIR/prefix"
SRC="$BUILD_DIR/src"          # dpkg-source -x trees
OBJ="$BUILD_DIR/obj"          # out-of-tree CMake build dirs
DL="$BUILD_DIR/downloads"     # apt-get source --download-only results
LOGS="$BUILD_DIR/logs"
STAMPS="$BUILD_DIR/stamps"
KH="$BUILD_DIR/kernel-headers"
APT_DIR="$BUILD_DIR/apt"
CC=musl-gcc
JOBS=2


LWS_PATCH="$REPO/patches/libwebsockets-4.1.6-ev-close.patch"
LWS_UNMASK_PATCH="$REPO/patches/libwebsockets-4.1.6-unmask-words.patch"
# Stand-in for Debian's only inotify-tools patch; see fetch_inotify_fallback.
INOTIFY_PATCH="$REPO/patches/inotify-tools-3.22.6.0-rename-init.patch"

# Build order matters: libwebsockets links against our libev.
LIBS=(libev msgpack-c inotify-tools libwebsockets)

declare -A VERSION=(
	[libev]=1:4.33-1
	[msgpack-c]=4.0.0-3
	[inotify-tools]=3.22.6.0-4
	[libwebsockets]=4.1.6-3
)
declare -A SRCDIR=(
	[libev]=libev-4.33
	[msgpack-c]=msgpack-c-4.0.0
	[inotify-tools]=inotify-tools-3.22.6.0
	[libwebsockets]=libwebsockets-4.1.6
)
# Pinned sha256 of every file of each source package.  Taken from a download
# on bookworm and cross-checked against the Checksums-Sha256 of each .dsc.
# (inotify-tools' debian.tar.xz is 404 on the mirror used when writing this;
# its value comes from the signed .dsc / Sources index.)
declare -A SHA256=(
	[libev_4.33-1.dsc]=5193ae6b2c2cd925f43ea1b1431f32a17f2fd94509743e0c8c05bb8d4c269521
	[libev_4.33.orig.tar.gz]=507eb7b8d1015fbec5b935f34ebed15bf346bed04a11ab82b8eee848c4205aea
	[libev_4.33-1.debian.tar.xz]=3e1ee9d9427b936f46a17e2ff41c60c30f8cb642b5abfe927ee92f9da197c0b0
	[msgpack-c_4.0.0-3.dsc]=235befbce21a7a2a4cb7ca5f4435abb7b210b051b1a80f429747ae478b7c0ca2
	[msgpack-c_4.0.0.orig.tar.gz]=420fe35e7572f2a168d17e660ef981a589c9cbe77faa25eb34a520e1fcc032c8
	[msgpack-c_4.0.0-3.debian.tar.xz]=4abe88c97ee3ae5338ef8f32bf34e6e076b4b449cabce2504f8cc43c1345f759
	[inotify-tools_3.22.6.0-4.dsc]=d5909450cb6ba270dfecaf645be83fea724af833488a9eb7e3ab92bbbe4a3df4
	[inotify-tools_3.22.6.0.orig.tar.gz]=c6b7e70f1df09e386217102a1fe041cfc15fa4f3d683d2970140b6814cf2ed12
	[inotify-tools_3.22.6.0-4.debian.tar.xz]=a540f83b4cffbe7a0066b63968770c360e3ea6661176aceb412a297f17da7154
	[libwebsockets_4.1.6-3.dsc]=5084ff62d072edd9f4d6740979cea07bf9a23c72ed8c869a5c2c1b51466c435d
	[libwebsockets_4.1.6.orig.tar.gz]=402e9a8df553c9cd2aff5d7a9758e9e5285bf3070c82539082864633db3deb83
	[libwebsockets_4.1.6-3.debian.tar.xz]=8f141b844dcabdcae8ca7bc62b772ad071e73e3c77533cfc62519a8841cf1f5e
)

# ----------------------------------------------------------------- helpers --
say() { echo "deps: $*"; }
die() { echo "deps: ERROR: $*" >&2; exit 1; }

# Source-package file names, derived from name + version (epoch dropped).
pkg_files() {
	local pkg=$1 v=${VERSION[$1]#*:}
	echo "${pkg}_${v}.dsc ${pkg}_${v%-*}.orig.tar.gz ${pkg}_${v}.debian.tar.xz"
}

# Hash of everything that defines the build: a change re-builds all libs.
build_hash() {
	cat "$SCRIPT" "$LWS_PATCH" "$LWS_UNMASK_PATCH" "$INOTIFY_PATCH" | sha256sum | cut -d' ' -f1
}

# A step is current when its stamp holds this HASH and its output exists.
declare -A OUTPUT=(
	[libev]="$PREFIX/lib/libev.a"
	[msgpack-c]="$PREFIX/lib/libmsgpackc.a"
	[inotify-tools]="$PREFIX/lib/libinotifytools.a"
	[libwebsockets]="$PREFIX/lib/libwebsockets.a"
	[smoke]="$BUILD_DIR/smoke/smoke"
)
stamp_ok() {
	[[ -f "$STAMPS/$1" && -f "${OUTPUT[$1]}" && "$(<"$STAMPS/$1")" == "$HASH" ]]
}

# Run one step's function with its output in $LOGS/<name>.log; on failure
# show the log's tail and stop.  `set -e` is ignored inside `if ! ( ... )`,
# hence the explicit rc capture.
run_logged() {
	local name=$1 rc; shift
	set +e
	( set -euo pipefail; "$@" ) >"$LOGS/$name.log" 2>&1
	rc=$?
	set -e
	if ((rc != 0)); then
		echo "deps: $name: FAILED (rc=$rc), last lines of $LOGS/$name.log:" >&2
		tail -n 40 "$LOGS/$name.log" >&2
		exit 1
	fi
}

# ------------------------------------------------------ host prerequisites --
ensure_packages() {
	"$REPO/scripts/install-deps.sh" release
}

# Debian's musl-gcc ships no Linux UAPI headers.  Expose the glibc ones via
# -idirafter so musl's own libc headers always win and linux/, asm/ and
# asm-generic/ only fill the gap.
make_kernel_headers() {
	local ma
	ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
	mkdir -p "$KH"
	ln -sfn /usr/include/linux "$KH/linux"
	ln -sfn "/usr/include/$ma/asm" "$KH/asm"
	ln -sfn /usr/include/asm-generic "$KH/asm-generic"
	[[ -f "$KH/linux/version.h" && -f "$KH/asm/unistd.h" && -d "$KH/asm-generic" ]] ||
		die "kernel headers incomplete under $KH (is linux-libc-dev installed?)"
}

# ---------------------------------------------------------- private apt ----
# apt with its own sources.list, lists/ and cache/; signatures are checked
# against the Debian archive keyring through signed-by.
APT_OPTS=()
setup_apt() {
	mkdir -p "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/sources.list.d"
	echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
		>"$APT_DIR/sources.list"
	APT_OPTS=(-q
		-o Dir::Etc::SourceList="$APT_DIR/sources.list"
		-o Dir::Etc::SourceParts="$APT_DIR/sources.list.d"
		-o Dir::State="$APT_DIR/state"
		-o Dir::Cache="$APT_DIR/cache")
}

APT_UPDATED=0
apt_update() {
	((APT_UPDATED)) && return 0
	apt-get "${APT_OPTS[@]}" update
	APT_UPDATED=1
}

# Check files against the pins; print names of missing files, fail loudly on
# a mismatch (the bad file is kept as *.mismatch for inspection).
verify_files() {
	local f sum bad=0
	for f in "$@"; do
		[[ -f "$DL/$f" ]] || { echo "$f"; continue; }
		if ! (cd "$DL" && echo "${SHA256[$f]}  $f" | sha256sum -c --quiet - >/dev/null 2>&1); then
			sum=$(sha256sum "$DL/$f" | cut -d' ' -f1)
			echo "deps: ERROR: sha256 mismatch for $f: expected ${SHA256[$f]}, got $sum" >&2
			mv -f "$DL/$f" "$DL/$f.mismatch"
			bad=1
		fi
	done
	((bad == 0)) || exit 1
}

# Download one source package (cached).  Sets FALLBACK=1 when only the
# inotify-tools Debian tarball is unobtainable (see below).
FALLBACK=0
fetch() {
	local pkg=$1 files missing
	read -ra files <<<"$(pkg_files "$pkg")"
	FALLBACK=0
	missing=$(verify_files "${files[@]}")
	[[ -z "$missing" ]] && { echo "sources cached"; return 0; }

	mkdir -p "$DL"
	# apt drops privileges to _apt for downloads; let it write here.
	[[ $EUID -eq 0 ]] && id _apt >/dev/null 2>&1 && chown _apt "$DL"
	[[ -n "$(ls "$APT_DIR/state/lists/"*Sources* 2>/dev/null)" ]] || apt_update
	(cd "$DL" && apt-get "${APT_OPTS[@]}" source --download-only "$pkg=${VERSION[$pkg]}") ||
		(apt_update && cd "$DL" && apt-get "${APT_OPTS[@]}" source --download-only "$pkg=${VERSION[$pkg]}") ||
		echo "apt-get source failed; checking what arrived"
	missing=$(verify_files "${files[@]}")
	[[ -z "$missing" ]] && return 0
	if [[ "$pkg" == inotify-tools && "$missing" == "${files[2]}" ]]; then
		FALLBACK=1
		echo "WARNING: ${files[2]} not downloadable; using orig tarball + $INOTIFY_PATCH"
		return 0
	fi
	die "$pkg: could not download: $missing"
}

# dpkg-source -x applies Debian's patches.  The .dsc's inline signature
# cannot be checked without the debian-keyring package (a warning only); the
# chain of trust is InRelease (archive key) -> Sources -> .dsc, plus our pins.
unpack() {
	local pkg=$1 files
	read -ra files <<<"$(pkg_files "$pkg")"
	mkdir -p "$SRC"
	rm -rf "${SRC:?}/${SRCDIR[$pkg]}"
	if ((FALLBACK)); then
		unpack_orig_with_patch "$pkg" "${files[1]}"
	else
		(cd "$DL" && dpkg-source -x "${files[0]}" "$SRC/${SRCDIR[$pkg]}")
	fi
}

# inotify-tools only: the mirror answers 404 for its debian.tar.xz.  Debian
# 3.22.6.0-4 carries a single patch (010_fix-conflict-entry-point, renaming the
# global `init`), which $INOTIFY_PATCH reproduces; the rest of debian/ is
# packaging we do not use.
unpack_orig_with_patch() {
	local pkg=$1 orig=$2 tmp="$SRC/.tmp-$1"
	rm -rf "$tmp" && mkdir -p "$tmp"
	tar -xzf "$DL/$orig" -C "$tmp"
	mv "$tmp"/* "$SRC/${SRCDIR[$pkg]}" && rmdir "$tmp"
	(cd "$SRC/${SRCDIR[$pkg]}" && patch -p1 --batch --forward --fuzz=0 <"$INOTIFY_PATCH")
}

# --------------------------------------------------------------- builders --
build_libev() {
	cd "$SRC/libev-4.33"
	# libev's own configure writes config.h; without it libev.c silently
	# falls back to select/poll on musl.
	CC=$CC CFLAGS="-O2 -idirafter $KH" ./configure --prefix="$PREFIX" \
		--disable-shared --enable-static
	local d
	for d in HAVE_SYS_EPOLL_H HAVE_EPOLL_CTL HAVE_SYS_EVENTFD_H HAVE_EVENTFD \
		HAVE_SYS_SIGNALFD_H HAVE_SIGNALFD HAVE_SYS_TIMERFD_H; do
		grep -q "^#define $d 1" config.h || die "libev: config.h lacks '#define $d 1'"
	done
	make -j"$JOBS"
	make install
	# event.h is libev's libevent-emulation header: keep it out of the
	# include path so it can't shadow anything; drop the libtool archive.
	rm -f "$PREFIX/include/event.h" "$PREFIX/lib/libev.la"
}

build_msgpack-c() {
	cmake -S "$SRC/msgpack-c-4.0.0" -B "$OBJ/msgpack-c" \
		-DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_C_FLAGS="-idirafter $KH" \
		-DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
		-DMSGPACK_ENABLE_SHARED=OFF -DMSGPACK_ENABLE_STATIC=ON \
		-DMSGPACK_BUILD_EXAMPLES=OFF -DMSGPACK_BUILD_TESTS=OFF
	cmake --build "$OBJ/msgpack-c" -j"$JOBS"
	cmake --install "$OBJ/msgpack-c"
}

# musl's <sys/fanotify.h> defines its own fanotify structs (fsid_t with
# __val[]) and inotify-tools 3.22.6 only compiles against glibc's, which is
# just the kernel UAPI header plus two prototypes (upstream issue #155; the
# fix, PR #154, was reverted).  Build-only shim doing what glibc does; musl's
# libc.a provides the two functions.
write_fanotify_shim() {
	mkdir -p "$1/sys"
	cat >"$1/sys/fanotify.h" <<'EOF'
/* Generated by runra scripts/deps.sh for building inotify-tools on musl. */
#ifndef RUNRA_SHIM_SYS_FANOTIFY_H
#define RUNRA_SHIM_SYS_FANOTIFY_H
#include <linux/fanotify.h>
int fanotify_init(unsigned flags, unsigned event_f_flags);
int fanotify_mark(int fd, unsigned flags, unsigned long long mask, int dfd,
		  const char *pathname);
#endif
EOF
}

build_inotify-tools() {
	local shim="$BUILD_DIR/compat/inotify-tools"
	write_fanotify_shim "$shim"
	cd "$SRC/inotify-tools-3.22.6.0"
	# The tarball ships no configure; configure also generates the public
	# inotifytools/inotify.h and fanotify.h headers.
	autoreconf -fi
	CC=$CC CFLAGS="-O2 -I$shim -idirafter $KH" ./configure --prefix="$PREFIX" \
		--disable-shared --enable-static --disable-doxygen
	# Only the library (+ its headers); the CLI tools and man pages are not needed.
	make -C libinotifytools -j"$JOBS"
	make -C libinotifytools install
	rm -f "$PREFIX/lib/libinotifytools.la"
	[[ -f "$PREFIX/include/inotifytools/inotifytools.h" && -f "$PREFIX/include/inotifytools/inotify.h" ]] ||
		die "inotify-tools: public headers not installed"
}

build_libwebsockets() {
	cd "$SRC/libwebsockets-4.1.6"
	patch -p1 --batch --forward --fuzz=0 <"$LWS_PATCH" || die "libwebsockets: $LWS_PATCH does not apply cleanly"
	patch -p1 --batch --forward --fuzz=0 <"$LWS_UNMASK_PATCH" ||
		die "libwebsockets: $LWS_UNMASK_PATCH does not apply cleanly"
	local opts=(
		-DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Release
		-DCMAKE_C_FLAGS="-fno-strict-aliasing -idirafter $KH -I$PREFIX/include"
		-DCMAKE_INSTALL_PREFIX="$PREFIX"
		-DLWS_WITH_LIBEV=ON
		-DLWS_WITH_EVLIB_PLUGINS=OFF   # plugins break static builds (lws #2033)
		-DLWS_WITH_SSL=OFF
		-DLWS_WITH_SHARED=OFF -DLWS_WITH_STATIC=ON
		-DLWS_WITHOUT_TESTAPPS=ON -DLWS_WITHOUT_TEST_SERVER=ON
		-DLWS_WITHOUT_TEST_SERVER_EXTPOLL=ON -DLWS_WITHOUT_TEST_PING=ON
		-DLWS_WITHOUT_TEST_CLIENT=ON
		-DLWS_WITH_HTTP2=OFF -DLWS_IPV6=ON -DLWS_UNIX_SOCK=ON
		-DLWS_WITH_UDP=OFF -DLWS_WITH_LEJP=OFF -DLWS_WITH_LWSAC=OFF
		-DLWS_CTEST_INTERNET_AVAILABLE=OFF -DLWS_WITH_EXPORT_LWSTARGETS=OFF
		-DDISABLE_WERROR=ON
		# Our static libev.  LIBEV_* too: lws 4.1.6 adds the include dir
		# found by its own find_path() before honouring LWS_LIBEV_*.
		-DLWS_LIBEV_INCLUDE_DIRS="$PREFIX/include" -DLWS_LIBEV_LIBRARIES="$PREFIX/lib/libev.a"
		-DLIBEV_INCLUDE_DIRS="$PREFIX/include" -DLIBEV_LIBRARIES="$PREFIX/lib/libev.a"
		# No libcap: lws probes CHECK_INCLUDE_FILE(sys/capability.h) and
		# CHECK_LIBRARY_EXISTS(cap ...); pre-set both results to "no".
		-DLWS_HAVE_SYS_CAPABILITY_H=OFF -DLWS_HAVE_LIBCAP=OFF
	)
	cmake -S . -B "$OBJ/libwebsockets" "${opts[@]}"
	check_lws_config "$OBJ/libwebsockets/lws_config.h"
	cmake --build "$OBJ/libwebsockets" -j"$JOBS"
	cmake --install "$OBJ/libwebsockets"
	check_lws_config "$PREFIX/include/lws_config.h"
}

check_lws_config() {
	local h=$1
	[[ -f "$h" ]] || die "libwebsockets: $h missing"
	grep -q '^#define LWS_WITH_LIBEV' "$h" || die "libwebsockets: LWS_WITH_LIBEV not defined in $h"
	local d
	for d in LWS_WITH_EVLIB_PLUGINS LWS_WITH_TLS LWS_HAVE_LIBCAP LWS_HAVE_SYS_CAPABILITY_H; do
		! grep -q "^#define $d\b" "$h" || die "libwebsockets: $d must not be defined in $h"
	done
}

# Fetch, unpack and build one library unless its stamp is current.
build_one() {
	local lib=$1 t0=$SECONDS
	if stamp_ok "$lib" && ! [[ "$lib" == libwebsockets && "$STAMPS/libev" -nt "$STAMPS/$lib" ]]; then
		say "$lib: cached"
		return 0
	fi
	rm -rf "${STAMPS:?}/$lib" "${OBJ:?}/$lib"
	# fetch + unpack share one subshell so FALLBACK reaches unpack.
	run_logged "$lib-fetch" fetch_and_unpack "$lib"
	# Surface the fallback warning (if any) outside the log.
	sed -n "s/^WARNING: /deps: $lib: WARNING: /p" "$LOGS/$lib-fetch.log"
	run_logged "$lib" "build_$lib"
	echo "$HASH" >"$STAMPS/$lib"
	BUILT_ANY=1
	say "$lib: built ($((SECONDS - t0))s, ${VERSION[$lib]})"
}

fetch_and_unpack() {
	fetch "$1"
	unpack "$1"
}

# --------------------------------------------------------- deps.env/smoke --
write_env() {
	cat >"$PREFIX/deps.env" <<EOF
# Generated by scripts/deps.sh - static musl dependencies for runra-agent.
RUNRA_DEPS_PREFIX="$PREFIX"
RUNRA_DEPS_CC="$CC"
RUNRA_DEPS_KERNEL_HEADERS="$KH"
RUNRA_DEPS_CFLAGS="-idirafter $KH -I$PREFIX/include"
RUNRA_DEPS_LIBS="-L$PREFIX/lib -lwebsockets -lev -lmsgpackc -linotifytools"
EOF
}

write_smoke_c() {
	cat >"$1" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <ev.h>
#include <libwebsockets.h>
#include <msgpack.h>
#include <inotifytools/inotifytools.h>

int main(void)
{
	struct ev_loop *loop = ev_default_loop(EVFLAG_NOENV);
	void *loops[1] = { loop };
	struct lws_context_creation_info info;
	struct lws_context *ctx;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;

	if (!loop)
		return 1;
	printf("ev_backend=%u\n", ev_backend(loop));

	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.options = LWS_SERVER_OPTION_LIBEV;
	info.foreign_loops = loops;
	ctx = lws_create_context(&info);
	if (!ctx)
		return 2;
	lws_context_destroy(ctx);
	printf("lws=%s\n", lws_get_library_version());

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str(&pk, 3);
	msgpack_pack_str_body(&pk, "key", 3);
	msgpack_pack_int(&pk, 42);
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_MAP || up.data.via.map.size != 1 ||
	    up.data.via.map.ptr[0].val.via.u64 != 42)
		return 3;
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	printf("msgpack=ok\n");

	if (!inotifytools_initialize())
		return 4;
	inotifytools_cleanup();
	printf("inotify=ok\n");
	return 0;
}
EOF
}

# Link everything statically through deps.env (so deps.env itself is tested).
smoke_test() {
	local d="$BUILD_DIR/smoke" out
	mkdir -p "$d"
	write_smoke_c "$d/smoke.c"
	# shellcheck disable=SC1091
	. "$PREFIX/deps.env"
	# shellcheck disable=SC2086  # flag strings are meant to split
	"$RUNRA_DEPS_CC" -static -O2 $RUNRA_DEPS_CFLAGS "$d/smoke.c" -o "$d/smoke" $RUNRA_DEPS_LIBS
	file "$d/smoke"
	file "$d/smoke" | grep -q 'statically linked' || die "smoke: binary is not statically linked"
	out=$("$d/smoke") || die "smoke: exited non-zero; output: $out"
	echo "$out"
	grep -qx "ev_backend=4" <<<"$out" || die "smoke: libev backend is not epoll (EVBACKEND_EPOLL=4)"
	grep -qx "lws=4.1.6.*" <<<"$out" || die "smoke: unexpected lws version"
	grep -qx "msgpack=ok" <<<"$out" || die "smoke: msgpack round-trip failed"
	grep -qx "inotify=ok" <<<"$out" || die "smoke: inotifytools_initialize failed"
}

# ------------------------------------------------------------------- main --
main() {
	local t0=$SECONDS lib
	HASH=$(build_hash)
	BUILT_ANY=0

	# Fast path: everything current -> no package or network checks at all.
	local all_ok=1
	for lib in "${LIBS[@]}" smoke; do stamp_ok "$lib" || all_ok=0; done
	[[ "$STAMPS/libev" -nt "$STAMPS/libwebsockets" ]] && all_ok=0
	if ((all_ok)) && [[ -f "$PREFIX/deps.env" ]]; then
		for lib in "${LIBS[@]}"; do say "$lib: cached"; done
		say "done (cached): $PREFIX/deps.env"
		return 0
	fi

	mkdir -p "$LOGS" "$STAMPS" "$PREFIX" "$OBJ"
	ensure_packages
	make_kernel_headers
	setup_apt
	for lib in "${LIBS[@]}"; do build_one "$lib"; done

	write_env
	if ((BUILT_ANY)) || ! stamp_ok smoke; then
		rm -f "$STAMPS/smoke"
		run_logged smoke smoke_test
		echo "$HASH" >"$STAMPS/smoke"
		say "smoke test: passed ($(grep -m1 ev_backend "$LOGS/smoke.log"), static)"
	fi
	say "done in $((SECONDS - t0))s: $PREFIX/deps.env"
}

main "$@"
