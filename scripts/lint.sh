#!/usr/bin/env bash
# lint.sh: the house rules a compiler does not check (STYLE.md): banned functions, and each library or
# system duty kept inside the one module that owns it.
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
src() { find agent proto fsops procmgr -name '*.[ch]' 2>/dev/null; }
# Code lines only: drop // and /* */ comment text so prose may name the functions it avoids.
code_of() { sed -e 's://.*$::' -e 's:/\*.*\*/::g' -e '/^\s*\*/d' "$1"; }

check() { # check DESCRIPTION REGEX ALLOWED_DIR_REGEX
	local what=$1 re=$2 allowed=$3 f
	for f in $(src); do
		[[ -n "$allowed" && "$f" =~ $allowed ]] && continue
		if code_of "$f" | grep -nE "$re" >/dev/null; then
			echo "lint: $f: $what:"
			code_of "$f" | grep -nE "$re" | sed 's/^/    /'
			fail=1
		fi
	done
}

check "banned function" '\b(system|popen|sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|select|alloca|strtok)\s*\(' ''
check "libwebsockets outside agent/" '#include\s*<libwebsockets' '^agent/'
check "libinotifytools outside fsops/" '#include\s*<inotifytools' '^fsops/'
check "process control outside procmgr/" '\b(fork|vfork|execve|execvp|waitpid|wait4|waitid|wait|kill|killpg)\s*\(' '^procmgr/'
check "I/O in proto/ (it must stay pure)" '\b(open|read|write|close|printf|fprintf|fopen|socket|getenv|time|clock_gettime)\s*\(' '^(agent|fsops|procmgr)/'
check "proto/ reaching into other modules" '#include\s*"\.\./(agent|fsops|procmgr)/' '^(agent|fsops|procmgr)/'

if ((fail)); then
	echo "lint: failed"
	exit 1
fi
echo "lint: ok ($(src | wc -l) files)"
