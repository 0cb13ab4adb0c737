#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR]: measures runra-agent against baselines measured in the same run and prints one
# Markdown report on stdout (progress goes to stderr). Exits non-zero when the agent cannot be started or a
# measurement fails; a missed target is reported, not an error. See bench/README.md.
# BENCH_FIGURES="12 13 14" measures only those figures (numbers 1 to 17, separated by spaces or commas); the
# report then has only their rows. Default: all. Figure 17 is not measured: it is the table of the sizes and
# idle memory other sandbox agents publish, beside ours from 1 and 2.
# 7, 9, 10 and 11 also compare with OpenSSH (a private sshd started here, see start_sshd) and 9 with websocketd,
# when they are installed (scripts/install-deps.sh bench); their rows say so when they are not.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(realpath -m "${1:-$ROOT/build}")
AGENT=$BUILD/release/runra-agent
OUT=$BUILD/bench
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
FIGURE_MAX=17
FIGURES=" $(tr ',' ' ' <<<"${BENCH_FIGURES:-$(seq -s ' ' $FIGURE_MAX)}") "

log() { echo "bench: $*" >&2; }
fail() {
	echo "bench: FAIL: $*" >&2
	[[ -s $OUT/agent.log ]] && { echo "bench: last agent log lines:" >&2; tail -n 5 "$OUT/agent.log" >&2; }
	exit 1
}

want() { # FIGURE...: true if any of them is to be measured
	local f
	for f; do [[ $FIGURES == *" $f "* ]] && return 0; done
	return 1
}
for f in $FIGURES; do
	[[ $f =~ ^[1-9][0-9]?$ ]] && ((f <= FIGURE_MAX)) || fail "BENCH_FIGURES: '$f' is not a figure (1 to $FIGURE_MAX)"
done

[[ -x $AGENT ]] || fail "$AGENT not found: build it with 'make release'"
mkdir -p "$OUT"
EV=$OUT/events # the baselines' side of 12-14, outside every agent's workdir: no agent watches it
rm -rf "$OUT/work" "$EV"
: >"$OUT/agent.log"

# ---- build the tools ----
log "building the tools in $OUT"
CFLAGS=(-O2 -Wall -Wextra -std=gnu11)
# The servers of the baselines are static like the agent, so that start-up and RSS compare like with like
# (a dynamic glibc program spends most of its start-up in the loader). musl if we have it, as the agent does.
if command -v musl-gcc >/dev/null; then STATIC_CC=(musl-gcc -static); else STATIC_CC=(gcc -static); fi
gcc "${CFLAGS[@]}" -pthread -o "$OUT/rabench" "$ROOT/bench/rabench.c" "$ROOT/bench/wire.c"
"${STATIC_CC[@]}" "${CFLAGS[@]}" -o "$OUT/echo_server" "$ROOT/bench/echo_server.c"
"${STATIC_CC[@]}" "${CFLAGS[@]}" -o "$OUT/sleeper" "$ROOT/bench/sleeper.c"
"${STATIC_CC[@]}" "${CFLAGS[@]}" -o "$OUT/pipecopy" "$ROOT/bench/pipecopy.c"
"${STATIC_CC[@]}" "${CFLAGS[@]}" -o "$OUT/filecopy" "$ROOT/bench/filecopy.c"
"${STATIC_CC[@]}" "${CFLAGS[@]}" -o "$OUT/inotify_relay" "$ROOT/bench/inotify_relay.c"
"${STATIC_CC[@]}" "${CFLAGS[@]}" -o "$OUT/tunnel_peer" "$ROOT/bench/tunnel_peer.c"
"${STATIC_CC[@]}" "${CFLAGS[@]}" -o "$OUT/tcp_relay" "$ROOT/bench/tcp_relay.c"
RABENCH=$OUT/rabench

# ---- pinning: servers on CPU 0, clients on CPU 1, so that neither steals the other's core ----
if (($(nproc) >= 2)); then
	SRV_CPU=0 CLI_CPU=1
	PIN_SRV=(taskset -c 0) PIN_CLI=(taskset -c 1) PIN_SAME=(taskset -c 0)
else
	SRV_CPU=-1 CLI_CPU=-1
	PIN_SRV=() PIN_CLI=() PIN_SAME=()
fi

# ---- processes we start, and only those, are stopped on exit ----
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -f "$OUT"/work/*.bin "$OUT"/work/.*.tmp # the 1 GiB outputs of 10 and 11, also after a failure
	rm -rf "$OUT/ssh"                         # the private sshd's keys and config: made again by each run
	rm -rf "$OUT"/work/ev-* "$EV"             # the files and trees of 12-14
}
trap cleanup EXIT

freeport() { "$RABENCH" freeport; }

start_agent() { # PORT [AGENT_ARG...]: sets AGENT_PID
	local port=$1
	shift
	RUNRA_AGENT_TOKEN=$TOKEN "${PIN_SRV[@]}" "$AGENT" --listen "127.0.0.1:$port" --workdir "$OUT/work" \
		--log-level warn "$@" 2>>"$OUT/agent.log" &
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
	"$RABENCH" probe "$port" "HTTP/1.1 200" 3000 || fail "the agent did not answer /healthz on port $port"
}

start_echo() { # PORT MODE: sets ECHO_PID
	"${PIN_SRV[@]}" "$OUT/echo_server" "$1" "$2" &
	ECHO_PID=$!
	PIDS+=("$ECHO_PID")
	"$RABENCH" probe "$1" "GET /healthz" 3000 || fail "the echo server did not start"
}

stop() { # PID: SIGTERM and wait; returns the exit status
	kill "$1" 2>/dev/null || true
	local rc=0
	wait "$1" 2>/dev/null || rc=$?
	return $rc
}

alive() { kill -0 "$1" 2>/dev/null || fail "$2 died during the run"; }

# Context switches of every thread of a process: each one is a wake-up from sleep (or a preemption).
ctxsw() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' /proc/"$1"/status; }
group() { sed -E ':a; s/^([0-9]+)([0-9]{3})/\1,\2/; ta' <<<"$1"; } # 1234567 -> 1,234,567

# ---- how quiet the machine is: other load (or a busy VM host) would skew every figure ----
# /proc/stat "cpu" line: user nice system idle iowait irq softirq steal, in 10 ms ticks.
cpu_ticks() { awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8; print busy, busy + $5 + $6 + $9, $9 }' /proc/stat; }
read -r BUSY0 ALL0 _ < <(cpu_ticks)
sleep 1
read -r BUSY1 ALL1 STEAL1 < <(cpu_ticks)
BG_BUSY=$(awk -v b=$((BUSY1 - BUSY0)) -v a=$((ALL1 - ALL0)) 'BEGIN { printf "%.0f", a ? 100 * b / a : 0 }')
BG_WARN=""
((BG_BUSY <= 10)) || BG_WARN=" — the machine was not idle: the figures may be skewed"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1. size ----
if want 1; then
	log "[1] binary size"
	strip -o "$OUT/runra-agent.stripped" "$AGENT"
	SIZE=$(stat -c %s "$OUT/runra-agent.stripped")
	BUSYBOX=""
	if [[ -x /bin/busybox ]] && dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null | grep -qx installed; then
		BUSYBOX=$(stat -L -c %s /bin/busybox)
	fi
fi

# ---- 2, 3, 5, 6: one agent ----
AGENT_RC="" XAGENT_RC="" FAGENT_RC="" EAGENT_RC="" PAGENT_RC="" QAGENT_RC="" # exit statuses after SIGTERM; empty: not started
if want 2 3 5 6; then
	PORT=$(freeport)
	start_agent "$PORT"
fi

# ---- 2, 3. idle RSS and wake-ups, agent and sleeper side by side over the same 10 s ----
if want 2 3; then
	log "[2, 3] idle RSS and wake-ups (12 s)"
	"${PIN_SRV[@]}" "$OUT/sleeper" &
	SLEEPER=$!
	PIDS+=("$SLEEPER")
	"${PIN_CLI[@]}" "$RABENCH" hold "$PORT" "$TOKEN" 20 >"$OUT/hold.out" &
	HOLD=$!
	PIDS+=("$HOLD")
	for _ in $(seq 50); do grep -q ready "$OUT/hold.out" && break; sleep 0.1; done
	grep -q ready "$OUT/hold.out" || fail "no ready message on the idle WebSocket"
	sleep 2
	RSS=$(rss_kib "$AGENT_PID") RSS_BASE=$(rss_kib "$SLEEPER")
	CS0=$(ctxsw "$AGENT_PID") CSB0=$(ctxsw "$SLEEPER")
	sleep 10
	CS1=$(ctxsw "$AGENT_PID") CSB1=$(ctxsw "$SLEEPER")
	alive "$HOLD" "the idle WebSocket client"
	alive "$AGENT_PID" "the agent"
	stop "$HOLD" || true
	stop "$SLEEPER" || true
	WAKE=$(awk -v a="$CS0" -v b="$CS1" 'BEGIN { printf "%.1f", (b - a) / 10 }')
	WAKE_BASE=$(awk -v a="$CSB0" -v b="$CSB1" 'BEGIN { printf "%.1f", (b - a) / 10 }')
fi

# ---- 5. round trip: on one CPU (pure processing cost) and across two (adds the cross-CPU wake-up) ----
if want 5; then
	log "[5] ping round trip"
	rtt() { # PORT TOKEN PIN...: p50 p99 min mean
		local port=$1 tok=$2
		shift 2
		"$@" "$RABENCH" rtt "$port" "$tok" 1000 20000 || fail "round trip on port $port"
	}
	R=$(rtt "$PORT" "$TOKEN" "${PIN_SAME[@]}")
	read -r A1_P50 A1_P99 _ <<<"$R"
	R=$(rtt "$PORT" "$TOKEN" "${PIN_CLI[@]}")
	read -r A2_P50 A2_P99 _ <<<"$R"
	EPORT=$(freeport)
	start_echo "$EPORT" blocking
	R=$(rtt "$EPORT" - "${PIN_SAME[@]}")
	read -r E1_P50 E1_P99 _ <<<"$R"
	R=$(rtt "$EPORT" - "${PIN_CLI[@]}")
	read -r E2_P50 E2_P99 _ <<<"$R"
	stop "$ECHO_PID" || true
fi

# ---- 6. throughput: one ping in flight per connection; median of three 1 s windows after 0.5 s of warm-up ----
declare -A TP
if want 6; then
	log "[6] ping throughput (6 x 3.5 s)"
	throughput() { # PORT TOKEN SERVER_PID CONNS: replies/s client% server%
		"${PIN_CLI[@]}" "$RABENCH" tput "$1" "$2" "$4" 3 "$3" || fail "throughput with $4 connections on port $1"
	}
	for n in 1 16 256; do TP[agent$n]=$(throughput "$PORT" "$TOKEN" "$AGENT_PID" $n); done
fi
if want 2 3 5 6; then
	alive "$AGENT_PID" "the agent"
	AGENT_RC=0
	stop "$AGENT_PID" || AGENT_RC=$?
fi
if want 6; then
	EPORT=$(freeport)
	start_echo "$EPORT" epoll
	for n in 1 16 256; do TP[echo$n]=$(throughput "$EPORT" - "$ECHO_PID" $n); done
	stop "$ECHO_PID" || true
fi

# ---- OpenSSH for 7, 10 and 11: a private sshd (Debian's openssh-server), started here, stopped after 11 ----
# Its own config, host key and authorized client key (both made for this run) in $OUT/ssh, on a free 127.0.0.1
# port; the clients get -F /dev/null and every file on their command line, so that nothing of the system's or
# the user's ssh configuration is read or written. sshd must be started with an absolute path (it re-executes
# itself for each connection) and wants its privilege separation directory, compiled in as /run/sshd (Debian's
# ssh.service makes it at start): made here if missing, which only root can.
SSH_DIR=$OUT/ssh SSH_WHY="" SSHD_PID="" SSH_OPTS=()
start_sshd() {
	local t
	for t in /usr/sbin/sshd ssh scp sftp ssh-keygen; do
		command -v "$t" >/dev/null && continue
		SSH_WHY="not measured: $t not found (Debian packages openssh-server and openssh-client)"
		return 0
	done
	if [[ ! -d /run/sshd ]] && ! mkdir -m 0755 /run/sshd 2>/dev/null; then
		SSH_WHY="not measured: sshd needs its privilege separation directory /run/sshd, which only root can make"
		return 0
	fi
	rm -rf "$SSH_DIR"
	mkdir -m 0700 "$SSH_DIR"
	ssh-keygen -q -t ed25519 -N '' -C runra-bench-host -f "$SSH_DIR/host_key"
	ssh-keygen -q -t ed25519 -N '' -C runra-bench-client -f "$SSH_DIR/client_key"
	cp "$SSH_DIR/client_key.pub" "$SSH_DIR/authorized_keys"
	SSH_PORT=$(freeport)
	# StrictModes no: the files are ours, but the build directory's parents need not pass sshd's checks.
	# SetEnv SHLVL=1: sshd runs every command (true, the sftp-server) with the user's login shell, and Debian's
	# bash reads ~/.bashrc for a command from sshd unless it is a nested shell (SSH_SOURCE_BASHRC): without it
	# the figures would be the user's dotfiles' (root's here runs "pyenv init": 80 ms), not OpenSSH's.
	cat >"$SSH_DIR/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/host_key
PidFile none
AuthorizedKeysFile $SSH_DIR/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
SetEnv SHLVL=1
EOF
	echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$SSH_DIR/host_key.pub")" >"$SSH_DIR/known_hosts"
	SSH_OPTS=(-F /dev/null -i "$SSH_DIR/client_key" -o IdentitiesOnly=yes -o BatchMode=yes
		-o UserKnownHostsFile="$SSH_DIR/known_hosts" -o GlobalKnownHostsFile=/dev/null
		-o StrictHostKeyChecking=yes -o LogLevel=ERROR)
	SSH_DEST=$(id -un)@127.0.0.1
	SSH_VERSION=$(ssh -V 2>&1 | cut -d, -f1)
	"${PIN_SRV[@]}" /usr/sbin/sshd -D -e -f "$SSH_DIR/sshd_config" 2>>"$SSH_DIR/sshd.log" &
	SSHD_PID=$!
	PIDS+=("$SSHD_PID")
	for _ in $(seq 50); do
		ssh "${SSH_OPTS[@]}" -p "$SSH_PORT" "$SSH_DEST" true </dev/null 2>/dev/null && return 0
		sleep 0.1
	done
	fail "the private sshd on port $SSH_PORT did not let us in ($SSH_DIR/sshd.log: $(tail -n 2 "$SSH_DIR/sshd.log" 2>/dev/null))"
}
if want 7 10 11; then start_sshd; fi

# ---- 7, 8, 9. processes: an agent of their own, allowed 4096 processes ----
# Its children inherit its CPU (0); the baselines' children inherit theirs, pinned the same way. One PATH for
# the agent and the baselines, so that finding "true" costs both the same few execve() attempts.
STD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
STREAM_BYTES=1073741824
if want 7 8 9; then
	XPORT=$(freeport)
	PATH=$STD_PATH start_agent "$XPORT" --max-processes 4096
	XAGENT_PID=$AGENT_PID
fi

if want 7; then
	log "[7] exec round trip (2 x 2,100 execs, then 2,100 spawns)"
	xrtt() { # PIN...: p50 p99 min mean
		"$@" "$RABENCH" exec "$XPORT" "$TOKEN" 100 2000 || fail "exec round trip"
	}
	R=$(xrtt "${PIN_SAME[@]}")
	read -r X1_P50 X1_P99 _ <<<"$R"
	R=$(xrtt "${PIN_CLI[@]}")
	read -r X2_P50 X2_P99 _ <<<"$R"
	R=$(PATH=$STD_PATH "${PIN_SRV[@]}" "$RABENCH" spawn 100 2000) || fail "raw spawn round trip"
	read -r SP_P50 SP_P99 _ <<<"$R"
fi
# 7c, 7d: what running "true" costs through OpenSSH: ssh on the client's CPU, sshd (and so the shell it starts)
# on the agent's, as in 7b. A new connection each time, then one session channel each over an open connection.
SSH_COLD_RUNS=100 SSH_COLD_WARMUP=3 SSH_MUX_RUNS=200 SSH_MUX_WARMUP=10
if want 7 && [[ -n $SSHD_PID ]]; then
	log "[7] exec round trip through OpenSSH ($((SSH_COLD_WARMUP + SSH_COLD_RUNS)) x ssh ... true, then" \
		"$((SSH_MUX_WARMUP + SSH_MUX_RUNS)) x over a multiplexed connection)"
	R=$(PATH=$STD_PATH "${PIN_CLI[@]}" "$RABENCH" cmdrtt $SSH_COLD_WARMUP $SSH_COLD_RUNS \
		ssh "${SSH_OPTS[@]}" -p "$SSH_PORT" "$SSH_DEST" true) || fail "ssh ... true"
	read -r SSH_P50 SSH_P99 SSH_MIN SSH_MEAN <<<"$R"
	"${PIN_CLI[@]}" ssh "${SSH_OPTS[@]}" -p "$SSH_PORT" -M -S "$SSH_DIR/mux" -N "$SSH_DEST" </dev/null \
		2>>"$SSH_DIR/ssh.log" &
	SSH_MASTER=$!
	PIDS+=("$SSH_MASTER")
	for _ in $(seq 50); do
		ssh "${SSH_OPTS[@]}" -S "$SSH_DIR/mux" -O check "$SSH_DEST" 2>/dev/null && break
		sleep 0.1
	done
	R=$(PATH=$STD_PATH "${PIN_CLI[@]}" "$RABENCH" cmdrtt $SSH_MUX_WARMUP $SSH_MUX_RUNS \
		ssh "${SSH_OPTS[@]}" -S "$SSH_DIR/mux" -p "$SSH_PORT" "$SSH_DEST" true) || fail "ssh -S ... true"
	read -r MUX_P50 MUX_P99 MUX_MIN MUX_MEAN <<<"$R"
	stop "$SSH_MASTER" || true
fi

# 9c: websocketd (Debian's package) serves the same command to the same client: it starts it for each WebSocket
# it accepts and sends its stdout as binary messages. On the agent's CPU, like the agent (its command too).
WSD_PID="" WSD_WHY=""
if want 9; then
	if command -v websocketd >/dev/null; then
		WSD_PORT=$(freeport)
		WSD_VERSION="websocketd $(dpkg-query -W -f='${Version}' websocketd 2>/dev/null || echo "(version unknown)")"
		# --loglevel fatal: 0.4.1 logs an error for every connection ("file already closed", reading stderr)
		"${PIN_SRV[@]}" websocketd --port="$WSD_PORT" --address=127.0.0.1 --binary=true --loglevel=fatal \
			/bin/sh -c "head -c $STREAM_BYTES /dev/zero" 2>>"$OUT/websocketd.log" &
		WSD_PID=$!
		PIDS+=("$WSD_PID")
		"$RABENCH" probe "$WSD_PORT" "HTTP/1.1 404" 3000 || fail "websocketd did not answer on port $WSD_PORT"
	else
		WSD_WHY="not measured: websocketd not found (Debian package websocketd)"
	fi
fi

median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; } # LINE LINE LINE: the middle one by its first number
# Three of each, alternating, and the median by MiB/s: one copy takes half a second, and how the scheduler
# happens to interleave head and its reader on one CPU moves a single run by ±30 %.
if want 9; then
	log "[9] stdout streaming (3 x 1 GiB through the agent, through a plain pipe-to-TCP copier$([[ -n $WSD_PID ]] &&
		echo " and through websocketd"))"
	ST_RUNS=() CP_RUNS=() WS_RUNS=()
	for _ in 1 2 3; do
		R=$("${PIN_CLI[@]}" "$RABENCH" stream "$XPORT" "$TOKEN" $STREAM_BYTES "$XAGENT_PID") || fail "the 1 GiB stream"
		ST_RUNS+=("$R")
		R=$("${PIN_CLI[@]}" "$RABENCH" copy $STREAM_BYTES $SRV_CPU "$OUT/pipecopy" "head -c $STREAM_BYTES /dev/zero") ||
			fail "the plain pipe-to-TCP copy"
		CP_RUNS+=("$R")
		if [[ -n $WSD_PID ]]; then
			R=$("${PIN_CLI[@]}" "$RABENCH" wsstream "$WSD_PORT" $STREAM_BYTES "$WSD_PID") || fail "the websocketd stream"
			WS_RUNS+=("$R")
		fi
	done
	read -r ST_MIBS ST_MSGS _ _ ST_SRV_MS ST_CLI <<<"$(median3 "${ST_RUNS[@]}")"
	read -r CP_MIBS _ CP_MS CP_CLI <<<"$(median3 "${CP_RUNS[@]}")"
	# Peak RSS of each run: VmHWM or sampled VmRSS, whichever is larger. The first run's is the figure: the
	# agent keeps finished execs' output for reattach (1 MiB per stream), so each later run starts 1-2 MiB higher.
	ST_PEAKS=$(printf '%s\n' "${ST_RUNS[@]}" | awk '{ printf "%s%d", (NR > 1 ? ", " : ""), ($3 > $4 ? $3 : $4) }')
	ST_PEAK=${ST_PEAKS%%,*}
	CP_HWM=$(printf '%s\n' "${CP_RUNS[@]}" | awk '$2 > m { m = $2 } END { print m }')
	ST_ALL=$(printf '%s\n' "${ST_RUNS[@]}" | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $1 }')
	CP_ALL=$(printf '%s\n' "${CP_RUNS[@]}" | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $1 }')
	if [[ -n $WSD_PID ]]; then
		alive "$WSD_PID" "websocketd"
		stop "$WSD_PID" || true
		read -r WS_MIBS WS_MSGS _ _ WS_SRV_MS WS_CLI <<<"$(median3 "${WS_RUNS[@]}")"
		WS_ALL=$(printf '%s\n' "${WS_RUNS[@]}" | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $1 }')
		WS_PEAKS=$(printf '%s\n' "${WS_RUNS[@]}" | awk '{ printf "%s%d", (NR > 1 ? ", " : ""), ($3 > $4 ? $3 : $4) }')
		WS_PEAK=${WS_PEAKS%%,*}
	fi
fi

# Throughput is what the whole machine can start: the agent (and so its children), the client and the
# baseline's threads all get every CPU.
if want 8; then
	log "[8] exec throughput (2 x 3.5 s)"
	((SRV_CPU < 0)) || taskset -a -p -c "0-$(($(nproc) - 1))" "$XAGENT_PID" >/dev/null
	XTP=$("$RABENCH" xtput "$XPORT" "$TOKEN" 32 3 "$XAGENT_PID") || fail "exec throughput"
	STP=$(PATH=$STD_PATH "$RABENCH" spawntput 32 3) || fail "raw spawn throughput"
fi
if want 7 8 9; then
	alive "$XAGENT_PID" "the agent"
	XAGENT_RC=0
	stop "$XAGENT_PID" || XAGENT_RC=$?
fi

# ---- 10, 11. file transfers: an agent of its own, with default settings ----
# One 1 GiB file of random bytes (nothing on the way, a deduplicating host disk included, gets it cheaper),
# made once and kept for later runs, with its sha256.
FILE_BYTES=1073741824
SRC=$OUT/file-1g.bin
UP_CHUNK_KIB=1024 UP_INFLIGHT=8
# 10c-e, 11c-e: one transfer of the file through OpenSSH (client on the client's CPU, sshd on the agent's),
# timed by rabench from the tool's start to its exit; then, untimed, the copy compared with the source and
# flushed to disk, as the agent's and the copiers' copies are. Prints "MiB/s sshd_children_CPU_ms tool_CPU_ms".
ssh_xfer() { # OUTPUT_FILE TOOL [ARG...]
	local out=$1 r
	shift
	r=$(PATH=$STD_PATH "${PIN_CLI[@]}" "$RABENCH" cmdcopy $FILE_BYTES "$SSHD_PID" "$@") || return 1
	cmp -s "$SRC" "$out" || { echo "bench: FAIL: $1 left $out different from $SRC" >&2; return 1; }
	sync "$out"
	echo "$r"
}
if want 10 11; then
	if [[ $(stat -c %s "$SRC" 2>/dev/null) != "$FILE_BYTES" ]]; then
		log "making $SRC (1 GiB from /dev/urandom, kept for later runs)"
		head -c $FILE_BYTES /dev/urandom >"$SRC.part"
		mv "$SRC.part" "$SRC"
	fi
	[[ -s $SRC.sha256 && $SRC.sha256 -nt $SRC ]] || sha256sum "$SRC" | cut -d' ' -f1 >"$SRC.sha256"
	SRC_SHA=$(cat "$SRC.sha256")
	cat "$SRC" >/dev/null # into the page cache: what the disk reads at is not what 10 and 11 measure
	FPORT=$(freeport)
	start_agent "$FPORT"
	FAGENT_PID=$AGENT_PID
fi

# Three of each, alternating, and the median by MiB/s, as in 9. The uploaded files are kept until all six
# are done: each run then writes into memory the page cache has not used yet, instead of into what the run
# before freed a moment ago (in a VM that returns freed memory to its host, one is much slower than the other).
if want 10; then
	log "[10] file upload (3 x 1 GiB through the agent and through a plain TCP-to-file copier$([[ -n $SSHD_PID ]] &&
		echo ", scp -O, sftp and sftp -c aes128-gcm@openssh.com"))"
	UP_RUNS=() UC_RUNS=() US_RUNS=() UF_RUNS=() UG_RUNS=()
	for i in 1 2 3; do
		R=$("${PIN_CLI[@]}" "$RABENCH" upload "$FPORT" "$TOKEN" "$SRC" "$SRC_SHA" "up-agent-$i.bin" "$FAGENT_PID" \
			$UP_CHUNK_KIB $UP_INFLIGHT) || fail "the 1 GiB upload"
		UP_RUNS+=("$R")
		R=$("${PIN_CLI[@]}" "$RABENCH" fileup "$SRC" $UP_CHUNK_KIB $SRV_CPU \
			"$OUT/filecopy" recv "$OUT/work/up-copy-$i.bin") || fail "the plain TCP-to-file copy"
		UC_RUNS+=("$R")
		[[ -n $SSHD_PID ]] || continue
		R=$(ssh_xfer "$OUT/work/up-scp-$i.bin" scp -O "${SSH_OPTS[@]}" -P "$SSH_PORT" "$SRC" \
			"$SSH_DEST:$OUT/work/up-scp-$i.bin") || fail "the 1 GiB upload with scp"
		US_RUNS+=("$R")
		printf 'put -f "%s" "%s"\n' "$SRC" "$OUT/work/up-sftp-$i.bin" >"$SSH_DIR/batch"
		R=$(ssh_xfer "$OUT/work/up-sftp-$i.bin" sftp "${SSH_OPTS[@]}" -b "$SSH_DIR/batch" -P "$SSH_PORT" "$SSH_DEST") ||
			fail "the 1 GiB upload with sftp"
		UF_RUNS+=("$R")
		printf 'put -f "%s" "%s"\n' "$SRC" "$OUT/work/up-gcm-$i.bin" >"$SSH_DIR/batch"
		R=$(ssh_xfer "$OUT/work/up-gcm-$i.bin" sftp "${SSH_OPTS[@]}" -c aes128-gcm@openssh.com -b "$SSH_DIR/batch" \
			-P "$SSH_PORT" "$SSH_DEST") || fail "the 1 GiB upload with sftp -c aes128-gcm@openssh.com"
		UG_RUNS+=("$R")
	done
	rm -f "$OUT"/work/up-*.bin
fi

if want 11; then
	log "[11] file download (3 x 1 GiB through the agent and through a plain file-to-TCP copier$([[ -n $SSHD_PID ]] &&
		echo ", scp -O, sftp and sftp -c aes128-gcm@openssh.com"))"
	DL_RUNS=() DC_RUNS=() DS_RUNS=() DF_RUNS=() DG_RUNS=()
	for _ in 1 2 3; do
		R=$("${PIN_CLI[@]}" "$RABENCH" download "$FPORT" "$TOKEN" "$SRC" "$SRC_SHA" "$OUT/work/down.bin" \
			"$FAGENT_PID") || fail "the 1 GiB download"
		DL_RUNS+=("$R")
		R=$("${PIN_CLI[@]}" "$RABENCH" filedown "$SRC" "$OUT/work/down.bin" $SRV_CPU "$OUT/filecopy" send "$SRC") ||
			fail "the plain file-to-TCP copy"
		DC_RUNS+=("$R")
		[[ -n $SSHD_PID ]] || continue
		R=$(ssh_xfer "$OUT/work/down-scp.bin" scp -O "${SSH_OPTS[@]}" -P "$SSH_PORT" "$SSH_DEST:$SRC" \
			"$OUT/work/down-scp.bin") || fail "the 1 GiB download with scp"
		DS_RUNS+=("$R")
		printf 'get "%s" "%s"\n' "$SRC" "$OUT/work/down-sftp.bin" >"$SSH_DIR/batch"
		R=$(ssh_xfer "$OUT/work/down-sftp.bin" sftp "${SSH_OPTS[@]}" -b "$SSH_DIR/batch" -P "$SSH_PORT" "$SSH_DEST") ||
			fail "the 1 GiB download with sftp"
		DF_RUNS+=("$R")
		printf 'get "%s" "%s"\n' "$SRC" "$OUT/work/down-gcm.bin" >"$SSH_DIR/batch"
		R=$(ssh_xfer "$OUT/work/down-gcm.bin" sftp "${SSH_OPTS[@]}" -c aes128-gcm@openssh.com -b "$SSH_DIR/batch" \
			-P "$SSH_PORT" "$SSH_DEST") || fail "the 1 GiB download with sftp -c aes128-gcm@openssh.com"
		DG_RUNS+=("$R")
	done
	rm -f "$OUT"/work/down*.bin
fi
if want 10 11; then
	alive "$FAGENT_PID" "the agent"
	FAGENT_RC=0
	stop "$FAGENT_PID" || FAGENT_RC=$?
fi
if [[ -n $SSHD_PID ]]; then
	alive "$SSHD_PID" "the private sshd"
	stop "$SSHD_PID" || true
fi

col() { # N RUN...: field N of each run, comma-separated
	local n=$1
	shift
	printf '%s\n' "$@" | awk -v n="$n" '{ printf "%s%s", (NR > 1 ? ", " : ""), $n }'
}
# Runs of upload or download ("MiB/s N VmHWM sampled_RSS agent_ms client%"): the median run's fields, the
# MiB/s of all three, and the peak RSS of each (the larger of VmHWM and the sampled VmRSS) and of all.
transfer_summary() { # NAME RUN...: sets NAME_MIBS NAME_MSGS NAME_MS NAME_CLI NAME_ALL NAME_PEAKS NAME_PEAK
	local name=$1 mibs msgs ms cli peaks
	shift
	read -r mibs msgs _ _ ms cli _ <<<"$(median3 "$@")"
	peaks=$(printf '%s\n' "$@" | awk '{ printf "%s%d", (NR > 1 ? ", " : ""), ($3 > $4 ? $3 : $4) }')
	printf -v "${name}_MIBS" %s "$mibs"
	printf -v "${name}_MSGS" %s "$msgs"
	printf -v "${name}_MS" %s "$ms"
	printf -v "${name}_CLI" %s "$cli"
	printf -v "${name}_ALL" %s "$(col 1 "$@")"
	printf -v "${name}_PEAKS" %s "$peaks"
	printf -v "${name}_PEAK" %s "$(tr -s ', ' '\n' <<<"$peaks" | sort -n | tail -n 1)"
}
# Runs of a copier ("MiB/s its_VmHWM its_ms other_end%"): the median run's fields, all MiB/s, the largest VmHWM.
copy_summary() { # NAME RUN...: sets NAME_MIBS NAME_MS NAME_CLI NAME_ALL NAME_HWM
	local name=$1 mibs ms cli
	shift
	read -r mibs _ ms cli <<<"$(median3 "$@")"
	printf -v "${name}_MIBS" %s "$mibs"
	printf -v "${name}_MS" %s "$ms"
	printf -v "${name}_CLI" %s "$cli"
	printf -v "${name}_ALL" %s "$(col 1 "$@")"
	printf -v "${name}_HWM" %s "$(col 2 "$@" | tr -s ', ' '\n' | sort -n | tail -n 1)"
}
if want 10; then
	transfer_summary UP "${UP_RUNS[@]}"
	copy_summary UC "${UC_RUNS[@]}"
fi
if want 11; then
	transfer_summary DL "${DL_RUNS[@]}"
	copy_summary DC "${DC_RUNS[@]}"
fi
# Runs through OpenSSH ("MiB/s sshd_ms tool_ms"): the median run's fields and all MiB/s.
ssh_summary() { # NAME RUN...: sets NAME_MIBS NAME_SRV NAME_CLI NAME_ALL
	local name=$1 mibs srv cli
	shift
	read -r mibs srv cli <<<"$(median3 "$@")"
	printf -v "${name}_MIBS" %s "$mibs"
	printf -v "${name}_SRV" %s "$srv"
	printf -v "${name}_CLI" %s "$cli"
	printf -v "${name}_ALL" %s "$(col 1 "$@")"
}
if [[ -n $SSHD_PID ]]; then
	if want 10; then
		ssh_summary US "${US_RUNS[@]}"
		ssh_summary UF "${UF_RUNS[@]}"
		ssh_summary UG "${UG_RUNS[@]}"
	fi
	if want 11; then
		ssh_summary DS "${DS_RUNS[@]}"
		ssh_summary DF "${DF_RUNS[@]}"
		ssh_summary DG "${DG_RUNS[@]}"
	fi
fi

# ---- 12, 13, 14. file events: an agent of its own, with default settings (its workdir watched) ----
# The agent's files and trees are made in its workdir (ev-*), watched from the start; the baselines' in $EV,
# which no agent watches, so that the agent does not work (on CPU 0) during a baseline run.
EV_WARMUP=100 EV_COUNT=2000 EV_DIRS=100 EV_FILES=100000 TREE_TOP=100 TREE_SUB=99
# 13b: bursts of 7,500 creates, 15,000 inotify events: within the kernel's default queue of 16,384.
EV_BURST=7500 EV_BURSTS=8
TREE_DIRS=$((1 + TREE_TOP + TREE_TOP * TREE_SUB))
if want 12 13 14; then
	rm -rf "$EV" "$OUT"/work/ev-*
	mkdir -p "$EV"
	EVPORT=$(freeport)
	start_agent "$EVPORT"
	EAGENT_PID=$AGENT_PID
fi

# First, before 12 and 13 fill the workdir. The tree is outside the workdir (the agent's own watch of the
# workdir would overlap a root inside it): 100 directories of 99 each, 10,001 with the root.
if want 14; then
	log "[14] recursive watch setup (3 x watch.add of a tree of $(group $TREE_DIRS) directories; 3 plain walks)"
	TREE=$EV/tree
	mkdir "$TREE"
	(cd "$TREE" && eval "mkdir d{001..$TREE_TOP}" && eval "mkdir d{001..$TREE_TOP}/e{01..$TREE_SUB}")
	((TREE_DIRS == $(find "$TREE" -type d | wc -l))) || fail "the tree does not have $TREE_DIRS directories"
	R=$("${PIN_CLI[@]}" "$RABENCH" wadd "$EVPORT" "$TOKEN" "$TREE" 3 $TREE_DIRS "$EAGENT_PID") ||
		fail "recursive watch.add"
	read -r WA_MED WA_RM WA_RSS WA_ALL <<<"$R"
	R=$("${PIN_SRV[@]}" "$RABENCH" inotwalk "$TREE" 3) || fail "the plain walk"
	read -r WW_MED WW_DIRS WW_ALL <<<"$R"
	((WW_DIRS == TREE_DIRS)) || fail "the plain walk watched $WW_DIRS directories, not $TREE_DIRS"
fi

# Creator and reader on the agent's CPU (12a, as in 5a), or the reader on the other one (12b). The relay is
# pinned as the agent is; the in-process read runs there too.
if want 12; then
	log "[12] file event latency (2 x $(group $((EV_WARMUP + EV_COUNT))) files through the agent," \
		"2 x through a plain inotify relay, 1 x read in-process)"
	evlat() { # NAME PIN...: p50 p99 min mean
		local name=$1
		shift
		"$@" "$RABENCH" evlat "$EVPORT" "$TOKEN" "$OUT/work/ev-$name" $EV_WARMUP $EV_COUNT || fail "event latency"
	}
	relaylat() { # NAME PIN...
		local name=$1
		shift
		"$@" "$RABENCH" relaylat "$EV/$name" $EV_WARMUP $EV_COUNT $SRV_CPU "$OUT/inotify_relay" "$EV/$name" ||
			fail "event latency through the relay"
	}
	R=$(evlat lat-1 "${PIN_SAME[@]}")
	read -r L1_P50 L1_P99 _ <<<"$R"
	R=$(evlat lat-2 "${PIN_CLI[@]}")
	read -r L2_P50 L2_P99 _ <<<"$R"
	R=$(relaylat lat-1 "${PIN_SAME[@]}")
	read -r LR1_P50 LR1_P99 _ <<<"$R"
	R=$(relaylat lat-2 "${PIN_CLI[@]}")
	read -r LR2_P50 LR2_P99 _ <<<"$R"
	R=$("${PIN_SRV[@]}" "$RABENCH" inotlat "$EV/lat-3" $EV_WARMUP $EV_COUNT) || fail "in-process inotify latency"
	read -r LI_P50 LI_P99 _ <<<"$R"
fi

# 13a: the creator is a child of the client, on the client's CPU; the agent and the relay have CPU 0 to
# themselves. 13b: the client creates each burst while the agent (the relay) is stopped, then times the drain.
if want 13; then
	log "[13] event throughput ($(group $EV_FILES) files in $EV_DIRS directories, then $EV_BURSTS bursts of" \
		"$(group $EV_BURST); through the agent and through the relay)"
	ETP=$("${PIN_CLI[@]}" "$RABENCH" evtput "$EVPORT" "$TOKEN" "$OUT/work/ev-tput" $EV_DIRS $EV_FILES "$EAGENT_PID") ||
		fail "event throughput"
	RTP=$("${PIN_CLI[@]}" "$RABENCH" relaytput "$EV/tput" $EV_DIRS $EV_FILES $SRV_CPU \
		"$OUT/inotify_relay" "$EV/tput") || fail "event throughput through the relay"
	EBU=$("${PIN_CLI[@]}" "$RABENCH" evburst "$EVPORT" "$TOKEN" "$OUT/work/ev-burst" $EV_DIRS $EV_BURST $EV_BURSTS \
		"$EAGENT_PID") || fail "event drain rate"
	RBU=$("${PIN_CLI[@]}" "$RABENCH" relayburst "$EV/burst" $EV_DIRS $EV_BURST $EV_BURSTS $SRV_CPU \
		"$OUT/inotify_relay" "$EV/burst") || fail "event drain rate through the relay"
fi
if want 12 13 14; then
	alive "$EAGENT_PID" "the agent"
	EAGENT_RC=0
	stop "$EAGENT_PID" || EAGENT_RC=$?
	rm -rf "$EV" "$OUT"/work/ev-*
fi

# ---- 15, 16. ports: an agent of their own, with default settings (--port-scan-ms 100 is the default) ----
# 15: a plain server "inside the sandbox" (tunnel_peer.c), on the agent's CPU as the sandbox's programs would be,
# reached through the agent's tunnel and, for the baseline, straight over loopback TCP; the client on the other CPU.
TUN_BYTES=1073741824 TUN_CHUNK_KIB=256 TUN_INFLIGHT=8
PL_COUNT=100 PL_SCAN_MS=100 PL_FAST_MS=20
if want 15 16; then
	PPORT=$(freeport)
	start_agent "$PPORT" --port-scan-ms $PL_SCAN_MS
	PAGENT_PID=$AGENT_PID
fi

# Two placements, three of each run alternating, and the median by MiB/s, as in 9-11. "pinned": the sandbox
# has one CPU (CPU 0: the agent, or the reference relay, beside the server) and the client is elsewhere (CPU 1).
# "unpinned": all three where the scheduler puts them. Each way, three paths: through the agent's tunnel,
# through tcp_relay (a relay with no protocol, at the agent's nice level, in the agent's place), and straight.
tunnel_runs() { # PLACEMENT: appends to the run arrays of that placement
	local p=$1 cli=("${PIN_CLI[@]}") r
	[[ $p == pinned ]] || cli=()
	local -n ts=TS_RUNS_$p tc=TC_RUNS_$p tl=TL_RUNS_$p tr=TR_RUNS_$p td=TD_RUNS_$p tm=TM_RUNS_$p
	r=$("${cli[@]}" "$RABENCH" tunsend "$PPORT" "$TOKEN" "$SINK_PORT" $TUN_BYTES $TUN_CHUNK_KIB $TUN_INFLIGHT \
		"$PAGENT_PID" "$PEER_PID") || fail "1 GiB through the tunnel to the sink ($p)"
	ts+=("$r")
	r=$("${cli[@]}" "$RABENCH" tcpsend "$RELAY_SINK_PORT" $TUN_BYTES $TUN_CHUNK_KIB "$RELAY_SINK_PID") ||
		fail "1 GiB through the plain relay to the sink ($p)"
	tl+=("$r")
	r=$("${cli[@]}" "$RABENCH" tcpsend "$SINK_PORT" $TUN_BYTES $TUN_CHUNK_KIB "$PEER_PID") ||
		fail "1 GiB straight to the sink ($p)"
	tc+=("$r")
	r=$("${cli[@]}" "$RABENCH" tunrecv "$PPORT" "$TOKEN" "$SOURCE_PORT" $TUN_BYTES "$PAGENT_PID" "$PEER_PID") ||
		fail "1 GiB through the tunnel from the source ($p)"
	tr+=("$r")
	r=$("${cli[@]}" "$RABENCH" tcprecv "$RELAY_SOURCE_PORT" $TUN_BYTES "$RELAY_SOURCE_PID") ||
		fail "1 GiB through the plain relay from the source ($p)"
	tm+=("$r")
	r=$("${cli[@]}" "$RABENCH" tcprecv "$SOURCE_PORT" $TUN_BYTES "$PEER_PID") || fail "1 GiB straight from the source ($p)"
	td+=("$r")
}
start_relay() { # TARGET_PORT NAME: a tcp_relay on the agent's CPU and nice level; sets NAME_PORT NAME_PID
	local out=$OUT/tcp_relay.$2.out pid port
	: >"$out"
	"${PIN_SRV[@]}" nice -n $(($(ps -o ni= -p "$PAGENT_PID"))) "$OUT/tcp_relay" "$1" >"$out" &
	pid=$!
	PIDS+=("$pid")
	for _ in $(seq 50); do [[ -s $out ]] && break; sleep 0.1; done
	read -r port <"$out" || fail "the plain relay did not start"
	printf -v "$2_PORT" %s "$port"
	printf -v "$2_PID" %s "$pid"
}
if want 15; then
	log "[15] tunnel throughput (pinned, then unpinned: 3 x 1 GiB each way through the agent's tunnel, through a plain relay, and straight)"
	: >"$OUT/tunnel_peer.out"
	"${PIN_SRV[@]}" "$OUT/tunnel_peer" $TUN_BYTES >"$OUT/tunnel_peer.out" &
	PEER_PID=$!
	PIDS+=("$PEER_PID")
	for _ in $(seq 50); do [[ -s $OUT/tunnel_peer.out ]] && break; sleep 0.1; done
	read -r SINK_PORT SOURCE_PORT <"$OUT/tunnel_peer.out" || fail "the tunnel peer did not start"
	start_relay "$SINK_PORT" RELAY_SINK
	start_relay "$SOURCE_PORT" RELAY_SOURCE
	for P in pinned unpinned; do
		declare -a "TS_RUNS_$P=()" "TC_RUNS_$P=()" "TL_RUNS_$P=()" "TR_RUNS_$P=()" "TD_RUNS_$P=()" "TM_RUNS_$P=()"
		if [[ $P == unpinned ]]; then
			for pid in "$PAGENT_PID" "$PEER_PID" "$RELAY_SINK_PID" "$RELAY_SOURCE_PID"; do
				taskset -a -p -c "0-$(($(nproc) - 1))" "$pid" >/dev/null || fail "unpinning $pid"
			done
		fi
		for _ in 1 2 3; do tunnel_runs $P; done
	done
	alive "$PEER_PID" "the tunnel peer"
	stop "$PEER_PID" || true
	stop "$RELAY_SINK_PID" || true
	stop "$RELAY_SOURCE_PID" || true
fi

# 16: the client (on the other CPU) is also the listener: a process of the agent's network namespace, which is
# all the scan looks at; the scan runs while the agent has a child, so the client starts an idle one first.
# "FDS PROCESSES" of the machine: to name a new listener's owner the agent reads every fd of every process.
proc_fds() { echo "$(find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) $(ls -d /proc/[0-9]* | wc -l)"; }
if want 16; then
	log "[16] port detection delay (2 x $PL_COUNT listeners: --port-scan-ms $PL_SCAN_MS, then $PL_FAST_MS)"
	read -r PL_FDS0 PL_PROCS0 < <(proc_fds)
	PL=$("${PIN_CLI[@]}" "$RABENCH" portlat "$PPORT" "$TOKEN" $PL_COUNT $PL_SCAN_MS "$PAGENT_PID") ||
		fail "port detection delay"
fi
if want 15 16; then
	alive "$PAGENT_PID" "the agent"
	PAGENT_RC=0
	stop "$PAGENT_PID" || PAGENT_RC=$?
fi
if want 16; then
	QPORT=$(freeport)
	start_agent "$QPORT" --port-scan-ms $PL_FAST_MS
	QAGENT_PID=$AGENT_PID
	PL_FAST=$("${PIN_CLI[@]}" "$RABENCH" portlat "$QPORT" "$TOKEN" $PL_COUNT $PL_FAST_MS "$QAGENT_PID") ||
		fail "port detection delay with --port-scan-ms $PL_FAST_MS"
	alive "$QAGENT_PID" "the agent"
	QAGENT_RC=0
	stop "$QAGENT_PID" || QAGENT_RC=$?
	read -r PL_FDS1 PL_PROCS1 < <(proc_fds)
fi

# ---- 4. start to ready: fork/exec until GET /healthz is answered, 20 times ----
if want 4; then
	log "[4] start to ready (2 x 20 starts)"
	SPORT=$(freeport)
	START=$(RUNRA_AGENT_TOKEN=$TOKEN "${PIN_CLI[@]}" "$RABENCH" start 20 "$SPORT" "HTTP/1.1 200" $SRV_CPU \
		"$AGENT" --listen "127.0.0.1:$SPORT" --workdir "$OUT/work" --log-level warn 2>>"$OUT/agent.log") ||
		fail "agent start-up measurement"
	START_BASE=$("${PIN_CLI[@]}" "$RABENCH" start 20 "$SPORT" "GET /healthz" $SRV_CPU "$OUT/echo_server" "$SPORT" blocking) ||
		fail "echo server start-up measurement"
	read -r ST_MED ST_MIN ST_MAX <<<"$START"
	read -r SB_MED SB_MIN SB_MAX <<<"$START_BASE"
fi

# ---- the report ----
log "report"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "—"; else if (a / b < 0.1) printf "%.2g×", a / b; else printf "%.2f×", a / b }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "**meets**" : "**misses**" }'; }
verdict_ge() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "**meets**" : "**misses**" }'; }
times() { awk -v a="$1" -v k="$2" 'BEGIN { print a * k }'; }                 # VALUE FACTOR
kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }
tp_cell() { # "replies/s client% server%" SERVER_NAME
	local r c s
	read -r r c s <<<"$1"
	# CPU per reply stays comparable even when the client, not the server, sets the pace.
	printf "%s/s; %s CPU %s%% = %s µs/reply; client CPU %s%%%s" "$(group "$r")" "$2" "$s" \
		"$(awk -v r="$r" -v s="$s" 'BEGIN { printf "%.1f", r ? s / 100 / r * 1e6 : 0 }')" "$c" \
		"$( ((c >= 90)) && echo " (client-bound)")"
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
if ! want 1; then
	:
elif [[ -n $BUSYBOX ]]; then
	SIZE_BASE="$(group "$BUSYBOX") B ($(kib "$BUSYBOX")), Debian busybox-static /bin/busybox"
	SIZE_RATIO=$(ratio "$SIZE" "$BUSYBOX")
else
	SIZE_BASE="none: busybox-static not installed; compared with the target only"
	SIZE_RATIO=$(ratio "$SIZE" 1048576)
fi
if ((SRV_CPU >= 0)); then
	PINNING="servers (agent, echo server, sleeper, relay, tunnel peer, sshd, websocketd) pinned to CPU $SRV_CPU, clients to CPU $CLI_CPU with taskset, except the one-CPU round trips (5a, 7a, 12a) where both are on CPU $SRV_CPU"
else
	PINNING="none (one CPU)"
fi
read -r _ _ STEAL2 < <(cpu_ticks)
IDLE_DRIVER=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)
HALT_POLL=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo n/a)

cat <<EOF
# runra-agent benchmark

- machine: $CPU_MODEL, $(nproc) cores, kernel $(uname -r), memory $MEM, Debian $(cat /etc/debian_version 2>/dev/null || echo "?")
- agent: \`$AGENT\` ($("$AGENT" version 2>/dev/null || echo "version unknown")), $(date -u +"%Y-%m-%d %H:%M UTC")
- pinning: $PINNING
- background: CPUs ${BG_BUSY}% busy in the second before the run; load average (1, 5, 15 min) $LOAD0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; steal time (the VM host running something else) during the run: $(((STEAL2 - STEAL1) * 10)) ms$BG_WARN
- ratio = runra-agent / baseline; every baseline was measured in this run$([[ $FIGURES == " $(seq -s ' ' $FIGURE_MAX) " ]] || echo "; only figures$FIGURES(BENCH_FIGURES)")

| figure | runra-agent | baseline | ratio | target |
|---|---|---|---|---|
EOF
if want 1; then
	cat <<EOF
| 1. binary size, stripped (figure 17 has what other agents publish) | $(group "$SIZE") B ($(kib "$SIZE")) | $SIZE_BASE | $SIZE_RATIO | ≤ 1 MiB: $(verdict "$SIZE" 1048576) |
EOF
fi
if want 2; then
	cat <<EOF
| 2. idle RSS, 1 idle WebSocket for 2 s | $RSS KiB | $RSS_BASE KiB, static sleeper | $(ratio "$RSS" "$RSS_BASE") | ≤ 2 MiB: $(verdict "$RSS" 2048) |
EOF
fi
if want 3; then
	cat <<EOF
| 3. idle wake-ups, 1 idle WebSocket, 10 s | $WAKE /s ($((CS1 - CS0)) in 10 s) | $WAKE_BASE /s ($((CSB1 - CSB0)) in 10 s), static sleeper | $(ratio "$WAKE" "$WAKE_BASE") | ≤ 1/s: $(verdict "$WAKE" 1) |
EOF
fi
if want 4; then
	cat <<EOF
| 4. start to ready (/healthz 200), median of 20 | $ST_MED µs (min $ST_MIN, max $ST_MAX) | $SB_MED µs (min $SB_MIN, max $SB_MAX), static TCP server | $(ratio "$ST_MED" "$SB_MED") | ≤ 10 ms: $(verdict "$ST_MED" 10000) |
EOF
fi
if want 5; then
	cat <<EOF
| 5a. ping RTT p50, client and server on one CPU | $A1_P50 µs | $E1_P50 µs, TCP echo | $(ratio "$A1_P50" "$E1_P50") | ≤ 3× echo: $(verdict "$A1_P50" "$(awk -v e="$E1_P50" 'BEGIN { print 3 * e }')") |
| 5a. ping RTT p99, one CPU | $A1_P99 µs | $E1_P99 µs, TCP echo | $(ratio "$A1_P99" "$E1_P99") | — |
| 5b. ping RTT p50, client and server on two CPUs | $A2_P50 µs | $E2_P50 µs, TCP echo | $(ratio "$A2_P50" "$E2_P50") | ≤ 3× echo: $(verdict "$A2_P50" "$(awk -v e="$E2_P50" 'BEGIN { print 3 * e }')") |
| 5b. ping RTT p99, two CPUs | $A2_P99 µs | $E2_P99 µs, TCP echo | $(ratio "$A2_P99" "$E2_P99") | — |
EOF
fi
if want 6; then
	for n in 1 16 256; do
		read -r ra _ _ <<<"${TP[agent$n]}"
		read -r re _ _ <<<"${TP[echo$n]}"
		echo "| 6. ping throughput, $n connection$( ((n > 1)) && echo s) | $(tp_cell "${TP[agent$n]}" agent) | $(tp_cell "${TP[echo$n]}" echo) | $(ratio "$ra" "$re") | — |"
	done
fi
if want 7; then
	SPAWN2=$(times "$SP_P50" 2)
	cat <<EOF
| 7a. exec round trip p50, argv ["true"], client on the agent's CPU | $X1_P50 µs | $SP_P50 µs, posix_spawnp("true") + waitpid | $(ratio "$X1_P50" "$SP_P50") | ≤ 2× spawn: $(verdict "$X1_P50" "$SPAWN2") |
| 7a. exec round trip p99, one CPU | $X1_P99 µs | $SP_P99 µs, posix_spawnp + waitpid | $(ratio "$X1_P99" "$SP_P99") | — |
| 7b. exec round trip p50, client on the other CPU | $X2_P50 µs | $SP_P50 µs, posix_spawnp + waitpid | $(ratio "$X2_P50" "$SP_P50") | ≤ 2× spawn: $(verdict "$X2_P50" "$SPAWN2") |
| 7b. exec round trip p99, two CPUs | $X2_P99 µs | $SP_P99 µs, posix_spawnp + waitpid | $(ratio "$X2_P99" "$SP_P99") | — |
EOF
	if [[ -n $SSHD_PID ]]; then
		cat <<EOF
| 7c. exec round trip p50 vs OpenSSH: \`ssh -o BatchMode=yes … 127.0.0.1 true\`, a new connection each time (TCP, key exchange, ed25519 host and user keys, a session running the login shell with -c true), $SSH_COLD_RUNS after $SSH_COLD_WARMUP warm-up | $X2_P50 µs (7b, client on the other CPU) | $SSH_P50 µs (min $SSH_MIN, mean $SSH_MEAN), $SSH_VERSION: ssh on CPU $CLI_CPU, a private sshd on CPU $SRV_CPU | $(ratio "$X2_P50" "$SSH_P50") | — |
| 7c. exec round trip p99 vs OpenSSH, a new connection each time | $X2_P99 µs (7b) | $SSH_P99 µs | $(ratio "$X2_P99" "$SSH_P99") | — |
| 7d. exec round trip p50 vs OpenSSH over an open connection: \`ssh -S SOCKET … true\` through a ControlMaster (a new ssh process and session channel each time, no handshake), $SSH_MUX_RUNS after $SSH_MUX_WARMUP warm-up | $X2_P50 µs (7b) | $MUX_P50 µs (min $MUX_MIN, mean $MUX_MEAN), the same sshd | $(ratio "$X2_P50" "$MUX_P50") | — |
| 7d. exec round trip p99 vs OpenSSH over an open connection | $X2_P99 µs (7b) | $MUX_P99 µs | $(ratio "$X2_P99" "$MUX_P99") | — |
EOF
	else
		echo "| 7c, 7d. exec round trip vs OpenSSH (\`ssh … true\`) | $X2_P50 µs (7b p50) | $SSH_WHY | — | — |"
	fi
fi
if want 8; then
	read -r XT_RATE _ _ <<<"$XTP"
	read -r SPT_RATE SPT_CPU <<<"$STP"
	cat <<EOF
| 8. exec throughput, 32 connections × 1 exec of "true" in flight | $(tp_cell "$XTP" agent | sed 's|µs/reply|µs/exec|') | $(group "$SPT_RATE")/s, 32 threads each posix_spawnp + waitpid in a loop; their CPU ${SPT_CPU}% | $(ratio "$XT_RATE" "$SPT_RATE") | ≥ 1,000/s: $(verdict_ge "$XT_RATE" 1000) |
EOF
fi
if want 9; then
	cat <<EOF
| 9. stdout streaming of \`head -c 1073741824 /dev/zero\`, median of 3 | $ST_MIBS MiB/s (runs: $ST_ALL; $(group "$ST_MSGS") stream messages; agent CPU $ST_SRV_MS ms; client CPU $ST_CLI%$( ((ST_CLI >= 90)) && echo ", client-bound")) | $CP_MIBS MiB/s (runs: $CP_ALL), the same command's pipe copied to TCP by a plain program (its CPU $CP_MS ms; receiver CPU $CP_CLI%) | $(ratio "$ST_MIBS" "$CP_MIBS") | ≥ 60% of the copy: $(verdict_ge "$ST_MIBS" "$(times "$CP_MIBS" 0.6)") |
| 9. agent peak RSS during the first stream | $ST_PEAK KiB ($([[ -n ${RSS:-} ]] && echo "idle, figure 2: $RSS KiB; ")peaks of the 3 runs: $ST_PEAKS KiB) | $CP_HWM KiB, the static copier's peak | $(ratio "$ST_PEAK" "$CP_HWM") | — |
EOF
	if [[ -n $WSD_PID ]]; then
		cat <<EOF
| 9c. stdout streaming vs websocketd: the same command served by websocketd (\`--binary\`, a WebSocket server that starts a command per connection and sends its stdout), read by the same client, every byte counted; median of 3 | $ST_MIBS MiB/s (9) | $WS_MIBS MiB/s (runs: $WS_ALL; $(group "$WS_MSGS") messages; websocketd CPU $WS_SRV_MS ms; client CPU $WS_CLI%), $WSD_VERSION on CPU $SRV_CPU | $(ratio "$ST_MIBS" "$WS_MIBS") | — |
| 9c. peak RSS during the first stream, vs websocketd's | $ST_PEAK KiB (9) | $WS_PEAK KiB (peaks of the 3 runs: $WS_PEAKS KiB) | $(ratio "$ST_PEAK" "$WS_PEAK") | — |
EOF
	else
		echo "| 9c. stdout streaming vs websocketd | $ST_MIBS MiB/s (9) | $WSD_WHY | — | — |"
	fi
fi
# 10c-e, 11c-e: the agent's MiB/s (10, 11) against OpenSSH's three ways, or why they were not measured.
ssh_rows() { # FIGURE WHAT AGENT_MIBS SCP_NAME SFTP_NAME GCM_NAME SFTP_COMMAND FSYNC_NOTE
	local fig=$1 what=$2 agent=$3 n v
	if [[ -z $SSHD_PID ]]; then
		echo "| ${fig}c-e. file $what vs OpenSSH (scp, sftp) | $agent MiB/s ($fig) | $SSH_WHY | — | — |"
		return
	fi
	for v in "c|$4|\`scp -O\` (the SCP protocol), default cipher (chacha20-poly1305@openssh.com); no fsync" \
		"d|$5|\`sftp -b\` with \`$7\`, default cipher; $8" \
		"e|$6|\`sftp -c aes128-gcm@openssh.com -b\` with \`$7\` (the fastest cipher here: AES-NI); $8"; do
		IFS='|' read -r sub n desc <<<"$v"
		local mibs=${n}_MIBS all=${n}_ALL srv=${n}_SRV cli=${n}_CLI
		echo "| $fig$sub. file $what of the same 1 GiB vs OpenSSH: $desc; median of 3 | $agent MiB/s ($fig) | ${!mibs} MiB/s (runs: ${!all}; sshd's processes CPU ${!srv} ms; $([[ $sub == c ]] && echo scp || echo sftp) and ssh CPU ${!cli} ms), $SSH_VERSION, encrypted | $(ratio "$agent" "${!mibs}") | — |"
	done
}
if want 10; then
	cat <<EOF
| 10. file upload of 1 GiB: open, $(group "$UP_MSGS") chunks of $UP_CHUNK_KIB KiB ($UP_INFLIGHT in flight), commit with sha256; median of 3 | $UP_MIBS MiB/s (runs: $UP_ALL; agent CPU $UP_MS ms; client CPU $UP_CLI%) | $UC_MIBS MiB/s (runs: $UC_ALL), the same file over plain TCP to a static program that writes and fsyncs it (its CPU $UC_MS ms; sender CPU $UC_CLI%) | $(ratio "$UP_MIBS" "$UC_MIBS") | ≥ 70% of the copy: $(verdict_ge "$UP_MIBS" "$(times "$UC_MIBS" 0.7)") |
| 10. agent peak RSS during the uploads | $UP_PEAK KiB (the largest of the 3 runs: $UP_PEAKS KiB) | $UC_HWM KiB, the static copier's peak | $(ratio "$UP_PEAK" "$UC_HWM") | ≤ 32 MiB: $(verdict "$UP_PEAK" 32768) |
EOF
	ssh_rows 10 upload "$UP_MIBS" US UF UG "put -f" "the server fsyncs the file before it answers, as the agent does"
fi
if want 11; then
	cat <<EOF
| 11. file download of 1 GiB: file.read with stream: true (sha256 not asked for; every byte compared by the client), $(group "$DL_MSGS") stream messages; median of 3 | $DL_MIBS MiB/s (runs: $DL_ALL; agent CPU $DL_MS ms; client CPU $DL_CLI%$( ((DL_CLI >= 90)) && echo ", client-bound")) | $DC_MIBS MiB/s (runs: $DC_ALL), a static program reading the file and writing it to plain TCP (its CPU $DC_MS ms; receiver CPU $DC_CLI%$( ((DC_CLI >= 90)) && echo ", receiver-bound")) | $(ratio "$DL_MIBS" "$DC_MIBS") | ≥ 70% of the copy: $(verdict_ge "$DL_MIBS" "$(times "$DC_MIBS" 0.7)") |
| 11. agent peak RSS during the downloads | $DL_PEAK KiB (the largest of the 3 runs: $DL_PEAKS KiB) | $DC_HWM KiB, the static copier's peak | $(ratio "$DL_PEAK" "$DC_HWM") | ≤ 32 MiB: $(verdict "$DL_PEAK" 32768) |
EOF
	ssh_rows 11 download "$DL_MIBS" DS DF DG "get" "no fsync"
fi
if want 12; then
	cat <<EOF
| 12a. file event latency p50: open(O_CREAT) + close until its \`file.created\` arrives, creator and reader on the agent's CPU | $L1_P50 µs | $LR1_P50 µs, a static program relaying inotify over TCP (\`inotify_relay.c\`); created and read in-process: $LI_P50 µs | $(ratio "$L1_P50" "$LR1_P50") | — |
| 12a. file event latency p99, one CPU | $L1_P99 µs | $LR1_P99 µs, the relay; created and read in-process: $LI_P99 µs | $(ratio "$L1_P99" "$LR1_P99") | ≤ 5 ms: $(verdict "$L1_P99" 5000) |
| 12b. file event latency p50, creator and reader on the other CPU | $L2_P50 µs | $LR2_P50 µs, the relay | $(ratio "$L2_P50" "$LR2_P50") | — |
| 12b. file event latency p99, two CPUs | $L2_P99 µs | $LR2_P99 µs, the relay | $(ratio "$L2_P99" "$LR2_P99") | ≤ 5 ms: $(verdict "$L2_P99" 5000) |
EOF
fi
# What a throughput run delivered and lost: "N of M delivered, nothing lost" or what went missing and how.
ev_lost() { # DELIVERED FILES OVERFLOWS RESCANS GAPS GAP_SEQS
	local dl=$1 files=$2 ov=$3 rs=$4 gaps=$5 gseq=$6 lost="nothing lost"
	((dl == files)) || lost="**$(group $((files - dl))) not delivered**"
	((ov == 0)) || lost+="; **$ov overflow$( ((ov > 1)) && echo s)**$( ((rs > 0)) && echo " ($rs watch.rescanned)")"
	((gaps == 0)) || lost+="; **$gaps gap$( ((gaps > 1)) && echo s) ($(group "$gseq") seqs)**"
	((dl == files || ov > 0 || gaps > 0)) || lost+=" **without an overflow or a gap**"
	echo "$(group "$dl") of $(group "$files") delivered, $lost"
}
per_event() { awk -v ms="$1" -v n="$2" 'BEGIN { printf "%.1f", n ? ms * 1000 / n : 0 }'; } # CPU_MS EVENTS: µs
busy_pct() { # 13A_RUN: the server's busy share (%) from its first event delivered to its last
	local rate dl ms
	read -r rate dl _ _ _ _ _ _ ms _ <<<"$1"
	awk -v ms="$ms" -v r="$rate" -v n="$dl" 'BEGIN { printf "%.0f", r && n ? ms / 10 / (n / r) : 0 }'
}
# 13a ("events/s delivered files overflows rescans gaps gap_seqs creates/s server_ms client%"): the rate, the
# losses, the creator's pace, the server's CPU per event and its busy share (below 90 %: creator-bound).
ev_cell() { # RUN SERVER_NAME
	local rate dl files ov rs gaps gseq crate ms cli busy
	read -r rate dl files ov rs gaps gseq crate ms cli <<<"$1"
	busy=$(busy_pct "$1")
	printf "%s/s (%s; creator %s files/s; %s CPU %s ms = %s µs/event, busy %s%% of the time%s; client CPU %s%%)" \
		"$(group "$rate")" "$(ev_lost "$dl" "$files" "$ov" "$rs" "$gaps" "$gseq")" "$(group "$crate")" "$2" "$ms" \
		"$(per_event "$ms" "$dl")" "$busy" "$( ((busy < 90)) && echo ": creator-bound")" "$cli"
}
# 13b ("events/s delivered files overflows rescans gaps gap_seqs drain_ms server_ms").
burst_cell() { # RUN SERVER_NAME
	local rate dl files ov rs gaps gseq dms ms
	read -r rate dl files ov rs gaps gseq dms ms <<<"$1"
	printf "%s/s (%s; %s ms draining; %s CPU %s ms = %s µs/event)" "$(group "$rate")" \
		"$(ev_lost "$dl" "$files" "$ov" "$rs" "$gaps" "$gseq")" "$dms" "$2" "$ms" "$(per_event "$ms" "$dl")"
}
ev_verdict() { # EVENTS/S DELIVERED FILES [CREATES/S BUSY%]: a creator-bound run below the target tests nothing
	local rate=${1%.*} dl=$2 files=$3 crate=${4:-0} busy=${5:-100}
	if ((dl != files || (rate < 50000 && busy >= 90))); then
		echo "**misses**"
	elif ((rate >= 50000)); then
		echo "**meets**"
	else
		echo "not tested: the creator made only $(group "${crate%.*}") files/s"
	fi
}
if want 13; then
	read -r ET_RATE ET_DL ET_FILES _ _ _ _ ET_CRATE _ <<<"$ETP"
	read -r RT_RATE _ <<<"$RTP"
	read -r EB_RATE EB_DL EB_FILES _ <<<"$EBU"
	read -r RB_RATE _ <<<"$RBU"
	cat <<EOF
| 13a. file event throughput: $(group $EV_FILES) files created as fast as one process can, in $EV_DIRS directories; one subscriber of \`file.created\` | $(ev_cell "$ETP" agent) | $(ev_cell "$RTP" relay), the relay of 12 | $(ratio "$ET_RATE" "$RT_RATE") | ≥ 50,000/s, nothing lost: $(ev_verdict "$ET_RATE" "$ET_DL" "$ET_FILES" "$ET_CRATE" "$(busy_pct "$ETP")") |
| 13b. file event drain rate: $EV_BURSTS bursts of $(group $EV_BURST) creates made while the agent is stopped (SIGSTOP), timed from SIGCONT to the burst's last event | $(burst_cell "$EBU" agent) | $(burst_cell "$RBU" relay), the relay, stopped the same way | $(ratio "$EB_RATE" "$RB_RATE") | ≥ 50,000/s, nothing lost: $(ev_verdict "$EB_RATE" "$EB_DL" "$EB_FILES") |
EOF
fi
if want 14; then
	cat <<EOF
| 14. recursive watch setup: \`watch.add\` of a tree of $(group $TREE_DIRS) directories ($TREE_TOP × $TREE_SUB and the root), request to reply; median of 3 | $WA_MED ms (runs: ${WA_ALL// /, }; watch.remove: $WA_RM ms; agent VmRSS +$WA_RSS KiB with the tree watched) | $WW_MED ms (runs: ${WW_ALL// /, }), a plain program walking the tree with inotify_add_watch on each directory | $(ratio "$WA_MED" "$WW_MED") | — |
EOF
fi
# 15: tunnel runs ("MiB/s messages VmHWM sampled_RSS agent_ms client% peer_ms") and the plain copies
# ("MiB/s peer_ms client%"): the median run's fields and all MiB/s; peak RSS as in 10 and 11.
plain_summary() { # NAME RUN...: sets NAME_MIBS NAME_PEER NAME_CLI NAME_ALL
	local name=$1 mibs peer cli
	shift
	read -r mibs peer cli <<<"$(median3 "$@")"
	printf -v "${name}_MIBS" %s "$mibs"
	printf -v "${name}_PEER" %s "$peer"
	printf -v "${name}_CLI" %s "$cli"
	printf -v "${name}_ALL" %s "$(col 1 "$@")"
}
tunnel_cell() { # PEER_NAME MESSAGES_NAME RUN...: the agent's cell of a 15 row (transfer_summary T "$@" first)
	local peer_name=$1 what=$2 peer
	shift 2
	read -r _ _ _ _ _ _ peer <<<"$(median3 "$@")"
	printf "%s MiB/s (runs: %s; %s %s; agent CPU %s ms; %s CPU %s ms; client CPU %s%%%s)" "$T_MIBS" "$T_ALL" \
		"$(group "$T_MSGS")" "$what" "$T_MS" "$peer_name" "$peer" "$T_CLI" "$( ((T_CLI >= 90)) && echo ", client-bound")"
}
tunnel_rows() { # PLACEMENT LETTER_TO_PORT LETTER_FROM_PORT WHERE: the two rows of one placement
	local p=$1 a=$2 b=$3 where=$4
	local -n ts=TS_RUNS_$p tc=TC_RUNS_$p tl=TL_RUNS_$p tr=TR_RUNS_$p td=TD_RUNS_$p tm=TM_RUNS_$p
	transfer_summary T "${ts[@]}"
	local ts_mibs=$T_MIBS ts_cell
	ts_cell=$(tunnel_cell sink port.sends "${ts[@]}")
	TUN_PEAKS_TO+="${TUN_PEAKS_TO:+; }$p: $T_PEAKS" TUN_PEAK=$((T_PEAK > ${TUN_PEAK:-0} ? T_PEAK : ${TUN_PEAK:-0}))
	transfer_summary T "${tr[@]}"
	local tr_mibs=$T_MIBS tr_cell
	tr_cell=$(tunnel_cell source "tunnel messages" "${tr[@]}")
	TUN_PEAKS_FROM+="${TUN_PEAKS_FROM:+; }$p: $T_PEAKS" TUN_PEAK=$((T_PEAK > TUN_PEAK ? T_PEAK : TUN_PEAK))
	plain_summary TC "${tc[@]}"
	plain_summary TL "${tl[@]}"
	plain_summary TD "${td[@]}"
	plain_summary TM "${tm[@]}"
	cat <<ROWS
| 15$a. tunnel throughput, client to port, $where: \`port.connect\` to a sink, 1 GiB in \`port.send\`s of $TUN_CHUNK_KIB KiB ($TUN_INFLIGHT in flight), eof, until the sink's answer (its byte count, every byte checked); median of 3 | $ts_cell | $TC_MIBS MiB/s (runs: $TC_ALL), the same bytes straight to the same sink over loopback TCP (sink CPU $TC_PEER ms; client CPU $TC_CLI%). A plain relay in the agent's place: $TL_MIBS MiB/s (runs: $TL_ALL; relay CPU $TL_PEER ms); the tunnel makes $(ratio "$ts_mibs" "$TL_MIBS") of it | $(ratio "$ts_mibs" "$TC_MIBS") | ≥ 60% of the copy: $(verdict_ge "$ts_mibs" "$(times "$TC_MIBS" 0.6)") (the plain relay: $(ratio "$TL_MIBS" "$TC_MIBS")) |
| 15$b. tunnel throughput, port to client, $where: \`port.connect\` to a source that sends 1 GiB, \`tunnel\` data messages until eof (every byte checked); median of 3 | $tr_cell | $TD_MIBS MiB/s (runs: $TD_ALL), the same bytes straight from the same source over loopback TCP (source CPU $TD_PEER ms; client CPU $TD_CLI%). A plain relay in the agent's place: $TM_MIBS MiB/s (runs: $TM_ALL; relay CPU $TM_PEER ms); the tunnel makes $(ratio "$tr_mibs" "$TM_MIBS") of it | $(ratio "$tr_mibs" "$TD_MIBS") | ≥ 60% of the copy: $(verdict_ge "$tr_mibs" "$(times "$TD_MIBS" 0.6)") (the plain relay: $(ratio "$TM_MIBS" "$TD_MIBS")) |
ROWS
}
if want 15; then
	TUN_PEAKS_TO="" TUN_PEAKS_FROM="" TUN_PEAK=0
	tunnel_rows pinned a b "one CPU for the sandbox (agent and server on CPU $SRV_CPU, client on CPU $CLI_CPU)"
	tunnel_rows unpinned c d "unpinned (all three where the scheduler puts them)"
	cat <<ROWS
| 15. agent peak RSS during the tunnels | $TUN_PEAK KiB ($([[ -n ${RSS:-} ]] && echo "idle, figure 2: $RSS KiB; ")client to port: $TUN_PEAKS_TO KiB; port to client: $TUN_PEAKS_FROM KiB) | — | — | — |
ROWS
fi
if want 16; then
	read -r PL_P50 PL_P99 PL_MIN PL_MEAN PL_WAKE PL_CPU <<<"$PL"
	read -r PF_P50 PF_P99 PF_MIN PF_MEAN PF_WAKE PF_CPU <<<"$PL_FAST"
	part() { awk -v v="$1" -v k="$2" 'BEGIN { printf "%g", v * k }'; }                        # MS FACTOR
	per_scan() { awk -v c="$1" -v w="$2" 'BEGIN { printf "%.0f", (w > 0 ? c / w : 0) }'; } # CPU_US/S WAKEUPS/S
	cat <<ROWS
| 16a. port detection delay p50: listen() on a free 127.0.0.1 port until \`port.opened\` arrives, $PL_COUNT listeners one at a time, --port-scan-ms $PL_SCAN_MS (the default) | $PL_P50 ms (min $PL_MIN, mean $PL_MEAN) | $(part $PL_SCAN_MS 0.5) ms, half the scan interval: the median wait for the next scan of a listener that comes at a random moment | $(ratio "$PL_P50" "$(part $PL_SCAN_MS 0.5)") | ≤ 100 ms: $(verdict "$PL_P50" 100) |
| 16a. port detection delay p99, --port-scan-ms $PL_SCAN_MS | $PL_P99 ms | $(part $PL_SCAN_MS 0.99) ms, 99% of the interval | $(ratio "$PL_P99" "$(part $PL_SCAN_MS 0.99)") | — |
| 16b. port detection delay p50, --port-scan-ms $PL_FAST_MS | $PF_P50 ms (min $PF_MIN, mean $PF_MEAN) | $(part $PL_FAST_MS 0.5) ms, half the interval | $(ratio "$PF_P50" "$(part $PL_FAST_MS 0.5)") | — |
| 16b. port detection delay p99, --port-scan-ms $PL_FAST_MS | $PF_P99 ms | $(part $PL_FAST_MS 0.99) ms, 99% of the interval | $(ratio "$PF_P99" "$(part $PL_FAST_MS 0.99)") | — |
| 16. what scanning costs: the agent's wake-ups and CPU over 2 s with one idle child (it scans only while it has one) and one idle WebSocket | --port-scan-ms $PL_SCAN_MS: $PL_WAKE /s, CPU $(group "$PL_CPU") µs/s ($(per_scan "$PL_CPU" "$PL_WAKE") µs per wake-up); --port-scan-ms $PL_FAST_MS: $PF_WAKE /s, CPU $(group "$PF_CPU") µs/s ($(per_scan "$PF_CPU" "$PF_WAKE") µs per wake-up); and for each new listener, a walk of every fd of every process to find its owner: $(group "$PL_FDS0") fds in $PL_PROCS0 processes before 16a, $(group "$PL_FDS1") in $PL_PROCS1 after 16b | without a child: no scans, no wake-ups (figure 3 measures such an agent) | — | — |
ROWS
fi

# ---- 17. size and idle memory against what other sandbox agents publish: quoted, not measured here ----
if want 17; then
	OURS_SIZE="figure 1 not measured in this run" OURS_RSS="figure 2 not measured in this run"
	[[ -z ${SIZE:-} ]] || OURS_SIZE="$(group "$SIZE") B ($(kib "$SIZE")), stripped, static (musl)"
	[[ -z ${RSS:-} ]] || OURS_RSS="$RSS KiB, one idle WebSocket open"
	cat <<EOF

Figure 17. Binary size and idle memory of other sandbox agents and container inits, as **published by their
projects — not measured here** (a figure that no source gives is "not published"; these are other versions,
machines and builds than ours, so only the order of magnitude compares)

| program | binary size | idle RSS | source |
|---|---|---|---|
| runra-agent, measured in this run (figures 1 and 2) | $OURS_SIZE | $OURS_RSS | this run |
| tini (container init, C) | "in the 10KB range" (dynamic); static "bigger, but still < 1M" | not published | krallin/tini \`README.md\`, "Size Considerations" |
| dumb-init (container init, C) | static with glibc "over 700KB"; static with musl "around 20KB" | not published | Yelp/dumb-init \`README.md\`, "Building with musl" |
| kata-agent (Kata Containers guest agent, Rust) | 30M, 23M after strip (2023); 21.05 MB, 14.78 MB with release-profile changes proposed in 2024 (not merged) | not published for the agent alone; for the former Go agent (2018) the guest's \`free -m\` "used" was 82 MB against 33 MB with runV's C agent, "the go runtime costs around 50MB more" (whole guest, not the agent's RSS) | kata-containers/kata-containers#8011 (PR #8012); kata-containers/kata-containers#9426 (PR #9427); kata-containers/runtime#295 |
| E2B envd (Go; not PID 1, a systemd unit) | not published | not published; the unit's budgets, not measurements: MemoryMin=50M, MemoryLow=100M, GOMEMLIMIT = min(sandbox RAM / 2, 512) MiB | e2b-dev/infra \`packages/orchestrator/pkg/template/build/core/rootfs/files/envd.service.tpl\`, \`templates.go\` |
| Daytona daemon (Go; the container's PID 1) | not published | not published | daytonaio/daytona \`apps/daemon\` (nothing found in its README, docs or issues) |
| microsandbox agentd (Rust; PID 1 in the microVM) | not published | not published | superradcompany/microsandbox (nothing found in its README, docs or issues) |
EOF
fi

echo
echo "Notes"
echo "- 1 KiB = 1024 B, 1 MiB = 1048576 B. RSS is VmRSS; wake-ups are voluntary + involuntary context switches."
if want 4; then
	cat <<EOF
- 4 polls a fresh connect + GET /healthz every ~20 µs from fork() on; the baseline answers as soon as it has
  accepted and read (it echoes the request). Both servers are static executables.
EOF
fi
if want 5; then
	cat <<EOF
- 5 sends one 27-byte frame ({"id":N,"op":"ping"}, masked) and waits for the answer, 20,000 times after
  1,000 warm-up; the echo server returns the same 27 bytes, which go through the same parser.
EOF
fi
if want 5 6 12; then
	cat <<EOF
- 5b, 6 with one connection and 12b also pay for waking a sleeping CPU on every message (cpuidle driver
  $IDLE_DRIVER, guest_halt_poll_ns $HALT_POLL); in a VM that wake-up can cost more than the work itself,
  which is why 5a and 12a are the rows that show what the agent adds.
EOF
fi
if want 6; then
	cat <<EOF
- 6: median of three 1 s windows after 0.5 s of warm-up, one ping in flight per connection. Server CPU is
  its CPU use in that window, from /proc/PID/stat (10 ms ticks); µs/reply is that CPU time divided
  by the replies. "client-bound": the single-threaded load generator used 90 % or more of its CPU, so the
  replies/s is a lower bound of what that server could do, and µs/reply is the fairer comparison.
EOF
fi
if want 7; then
	cat <<EOF
- 7: exec of argv ["true"] (no shell), then wait for its reply, 2,000 times after 100 warm-up, on one
  connection; every reply must say exit code 0. The baseline is the raw cost of the same: posix_spawnp("true")
  and waitpid from one thread, pinned to CPU $SRV_CPU like the agent (children inherit their parent's CPU).
  Both find "true" through the same PATH ($STD_PATH).
  7a has the client on the agent's CPU too, 7b on the other one.
EOF
fi
if want 7 10 11 && [[ -n $SSHD_PID ]]; then
	cat <<EOF
- 7c, 7d, 10c-e, 11c-e: OpenSSH is $SSH_VERSION: a private sshd started by the bench (\`sshd -D -e -f\`
  \`$SSH_DIR/sshd_config\`, on a free 127.0.0.1 port, on CPU $SRV_CPU like the agent; its own ed25519 host key;
  public-key authentication only, with an ed25519 client key made for the run; no PAM; sftp through Debian's
  \`/usr/lib/openssh/sftp-server\`), stopped after 11, its files deleted. The clients run on CPU $CLI_CPU with
  \`-F /dev/null -i KEY -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=FILE\`: nothing of the
  system's or the user's ssh configuration is read or written. The bench makes /run/sshd (sshd's privilege
  separation directory, which Debian's ssh.service makes) if it is missing.
EOF
fi
if want 7 && [[ -n $SSHD_PID ]]; then
	cat <<EOF
- 7c, 7d: wall time from starting \`ssh\` to its exit with status 0 (rabench posix_spawnp and wait4), so each includes
  starting the ssh client. 7c: a new connection each time: TCP, the key exchange, host key check, public-key
  authentication, a session channel whose command sshd runs with the user's login shell (\`\$SHELL -c true\`;
  \`SetEnv SHLVL=1\` in the private sshd's config keeps Debian's bash from reading the user's ~/.bashrc, so that
  the figure is OpenSSH's, not the dotfiles'). OpenSSH 9.2's default key exchange is sntrup761x25519-sha512.
  7d: one master connection (ControlMaster, started once), then each \`ssh -S\` asks it for a new session channel
  over the open connection: the closest to the agent's case, one exec over an open WebSocket. The agent's row
  is 7b (client on the other CPU, as ssh is). The agent needs neither the handshake nor a shell.
EOF
fi
if want 8; then
	cat <<EOF
- 8: 32 WebSocket connections, one exec in flight on each (the next sent when the reply comes), median of
  three 1 s windows after 0.5 s of warm-up, as in 6. Agent, client and baseline are not pinned: the
  agent's children may run on every CPU, as the baseline's do. Agent CPU is the agent's own (its
  children's is not counted), and µs/exec is that CPU time per exec.
EOF
fi
if want 9; then
	cat <<EOF
- 9: one exec of \`head -c 1073741824 /dev/zero\` (through /bin/sh -c); the client checks that the stdout
  stream messages are contiguous by offset and add up to exactly 1 GiB, and that the reply says exit code
  0 with nothing lost. Timed from sending the request to the reply. The baseline (\`pipecopy.c\`, static)
  starts the same command with stdout on a pipe, reads it 64 KiB at a time as the agent does and write()s
  it to a blocking TCP socket; the receiver counts until EOF, timed from accept. Both senders (and
  \`head\`) on CPU $SRV_CPU, both receivers on CPU $CLI_CPU. Three runs of each, alternating, and the median
  of each: a single copy takes half a second and varies by ±30 %. 1 MiB = 1048576 B.
- 9, peak RSS: VmHWM, reset (via /proc/PID/clear_refs) just before each exec and read after its reply,
  checked against VmRSS sampled every 10 ms; the larger counts. The first run's is the figure: each later
  run starts higher (by 1 to 2 MiB so far), because the agent keeps the output of finished execs for
  reattach (the last --output-buffer-bytes, 1 MiB, of each stream; 16 MiB for all of them together). The
  copier's is its own VmHWM, the largest of its three runs.
EOF
fi
if want 9 && [[ -n $WSD_PID ]]; then
	cat <<EOF
- 9c: $WSD_VERSION (Go), started once by the bench: \`websocketd --binary=true --port=P --address=127.0.0.1\`
  \`/bin/sh -c "head -c $STREAM_BYTES /dev/zero"\`, on CPU $SRV_CPU like the agent; it starts the command for each
  WebSocket it accepts and sends its stdout as binary messages (fragmented: a message is several frames),
  then hangs up when the command ends. The client (rabench \`wsstream\`, on CPU $CLI_CPU) times from the upgrade
  request (which starts the command, as the exec request does for the agent) to the end, and counts every
  data byte: exactly 1 GiB. Unlike the agent, websocketd sends no offsets, no exit status and no request ids,
  and keeps nothing for reattach. Three runs, alternating with 9's, median; peak RSS as in 9.
EOF
fi
if want 10 11; then
	cat <<EOF
- 10, 11: an agent of their own with default settings, its workdir \`$OUT/work\` on the filesystem of the
  source file \`$SRC\` (1 GiB from /dev/urandom, made once and kept, read into the page cache before the
  runs). Agent and copier on CPU $SRV_CPU, client and the copier's other end on CPU $CLI_CPU. Three runs of
  each, alternating, and the median of each; peak RSS is the largest of the three runs (VmHWM reset before
  each, checked against VmRSS sampled every 10 ms, as in 9).
EOF
fi
if want 10; then
	cat <<EOF
- 10: file.upload.open, then chunks in order ($UP_CHUNK_KIB KiB each, read with pread and masked as a
  WebSocket client must; a new one sent for each reply, $UP_INFLIGHT unanswered at most), each reply's
  \`received\` checked, then file.upload.commit with the sha256 of the file; the reply must give its size and
  sha256. Timed from the open request to the commit's reply, which comes after the agent's fsync. The
  baseline (\`filecopy.c\`, static) reads the connection 64 KiB at a time into a new file, fsyncs it and
  closes; the sender writes the file in the same $UP_CHUNK_KIB KiB reads, timed from accept until that close.
  The uploaded files (six; fifteen with OpenSSH's) are kept until the last upload is done: in a VM that gives freed memory back to its host,
  the first write of a gigabyte into memory not used before costs seconds of CPU, and each run should start
  from the same state, not from what the run just before freed (the copier's CPU shows what that costs).
EOF
fi
if want 11; then
	cat <<EOF
- 11: file.read with stream: true; every stream message is checked (the request's id, stream "file",
  offsets contiguous), every byte compared with the file and written in place over one output file
  (filled once, before the clock starts, and fdatasync'ed after it stops); the reply must give 1 GiB, the
  file's sha256 and eof. The baseline (\`filecopy.c\`) reads the file 64 KiB at a time (the agent's chunk) and
  write()s it to a blocking TCP socket; the receiver is the same code as the agent's client minus the
  protocol, timed from accept until EOF.
EOF
fi
if want 10 11 && [[ -n $SSHD_PID ]]; then
	cat <<EOF
- 10c-e, 11c-e: OpenSSH encrypts and authenticates every byte (chacha20-poly1305@openssh.com by default,
  aes128-gcm@openssh.com when asked: the fastest with AES-NI) and the agent here is plain ws:// on loopback;
  so these rows are what the usual way of moving a file into a machine costs, not the same work. Timed from
  the tool's start to its exit (the connection's set-up included); then, untimed, the copy is compared with
  the source (\`cmp\`) and flushed to disk (\`sync FILE\`). \`scp -O\` is the SCP protocol (OpenSSH 9's plain scp
  uses SFTP, as the sftp rows do) and cannot ask for an fsync, so its uploads are timed without one, unlike
  the agent's; \`sftp put -f\` asks the server for an fsync (fsync@openssh.com) before the transfer counts as
  done. sftp uses its defaults (32 KiB requests, 64 in flight). The sshd CPU is what the listener's
  per-connection processes (and the sftp-server) used, from its children's times in /proc/PID/stat; the tool's
  includes the ssh it runs. Downloads go to a file per tool, rewritten by each run (the tools truncate it),
  not overwritten in place as the agent's client and the copier do. Three runs of each, alternating with 10's
  (11's), median; the 15 uploaded files are kept until the last upload, as in 10.
EOF
fi
if want 12 13 14; then
	cat <<EOF
- 12-14: an agent of their own with default settings, whose workdir \`$OUT/work\` is watched (recursively,
  inotify) from the start. The client subscribes to \`file.created\` under the directory it uses, and to
  \`watch.overflow\` and \`watch.rescanned\` (no path), so that a loss shows as one; \`gap\` messages come
  unasked. The baselines work in \`$EV\`, which no agent watches. The relay (\`inotify_relay.c\`, static,
  on CPU $SRV_CPU like the agent) watches its directory with the agent's inotify mask, reads the instance
  64 KiB at a time with blocking reads and writes the name of every created entry, a line each, to a TCP
  connection: what the agent does for a \`file.created\`, minus the protocol and the agent's own work per
  event (an lstat for the kind and size, the event ring, the subscription filters).
EOF
fi
if want 12; then
	cat <<EOF
- 12: the client creates a file (open with O_CREAT | O_EXCL, then close: the kernel queues IN_CREATE and
  IN_CLOSE_WRITE) in a new directory of the workdir and waits for its \`file.created\`, whose path must be
  the file's, before the next; timed from just before the open (CLOCK_MONOTONIC) to the event's arrival,
  $(group $EV_COUNT) times after $EV_WARMUP warm-up. Through the relay the client waits for the file's
  name instead. "Created and read in-process": one program creates the file and reads its IN_CREATE
  from its own inotify instance (blocking read, same mask), on CPU $SRV_CPU: the create and the kernel's
  part alone, which every latency includes. On ext4 without a journal that create is much slower (up to
  ~200 µs here, instead of ~10) for a few minutes after many files were deleted nearby: the inode
  allocator skips recently deleted inodes (\`recently_deleted\`), and every run deletes its $(group $((2 * EV_FILES + 2 * EV_BURST * EV_BURSTS))) files
  of 13 at its end, so a run started within minutes of another shows it. 12a has the client on the
  agent's CPU, 12b on the other one.
EOF
fi
if want 13; then
	QUEUED=$(cat /proc/sys/fs/inotify/max_queued_events 2>/dev/null || echo "?")
	cat <<EOF
- 13: the client makes $EV_DIRS directories in a new directory of the workdir and waits for their events
  (the agent then watches them all), then creates files in them (open with O_CREAT, close; file i in
  directory i mod $EV_DIRS) and counts the \`file.created\` events of kind "file". A count ends when every
  file's event came, or when the files are made and nothing came for 2 s. CPU is the agent's (the relay's)
  over the run, from /proc/PID/stat, and per event delivered. Each create queues two inotify events, so
  the kernel's queue (fs.inotify.max_queued_events = $QUEUED) holds half as many creates: a
  reader that falls that far behind loses events, and the kernel says so (IN_Q_OVERFLOW); the agent then
  sends \`watch.overflow\`, rebuilds every watch and sends \`watch.rescanned\`, and the creates it missed
  are not reported one by one.
- 13a: a forked creator makes $(group $EV_FILES) files as fast as it can, sharing CPU $CLI_CPU with the
  client; the agent (or the relay) has CPU $SRV_CPU to itself. Events/s is from the first event counted to
  the last. When the agent was busy less than 90 % of that time it kept up with the creator, and the rate
  is the creator's ("creator-bound"): 13b then shows what the agent can do.
- 13b: the client stops the agent (SIGSTOP, and waits until /proc says it is stopped), creates a burst
  of $(group $EV_BURST) files ($(group $((2 * EV_BURST))) inotify events, within the kernel's queue),
  continues the agent (SIGCONT) and counts the burst's events; $EV_BURSTS bursts. Events/s is all events
  over the sum of the drain times, each from SIGCONT to the burst's last event: how fast a backlog is
  turned into \`file.created\` messages on one connection. The relay is measured the same way.
EOF
fi
if want 14; then
	cat <<EOF
- 14: \`watch.add {path, recursive: true}\` of a tree outside the workdir, timed from the request to the
  reply, whose \`result.watch.dirs\` must be $(group $TREE_DIRS); then \`watch.remove {watch: id}\` (timed
  too) and 0.2 s for the agent to read the removed watches' IN_IGNORED; three times. VmRSS growth is the
  agent's VmRSS after the first add minus before it. The baseline (in \`rabench\`, on CPU $SRV_CPU like the
  agent) walks the same tree the same way (open, readdir, d_type) with inotify_add_watch on every
  directory, into a new inotify instance each time, three times; the agent also checks every entry
  against its exclude patterns and keeps a node per directory.
EOF
fi
if want 15; then
	cat <<NOTES
- 15: an agent of its own (shared with 16a), default settings. The server "inside the sandbox"
  (\`tunnel_peer.c\`, static, started by the bench, on CPU $SRV_CPU with the agent, where the sandbox's own
  programs would run) listens on two 127.0.0.1 ports and serves one connection at a time: the sink reads
  until EOF (256 KiB reads), checks every byte against a fixed pseudo-random pattern (\`pattern.h\`; its period
  is odd, so a piece lost, doubled or moved shows) and answers "BYTES ok"; the source writes 1 GiB of that
  pattern (256 KiB writes), shuts its side down and waits for the other side to close. Client on CPU $CLI_CPU.
- 15a: \`port.connect {port}\`, then \`port.send {tunnel, data}\` of $TUN_CHUNK_KIB KiB each (masked, as a
  client must), a new one for each reply, $TUN_INFLIGHT unanswered at most (the agent answers a send at once
  while at most 1 MiB waits for the port, otherwise when its bytes are written: replies may come out of
  order), and \`port.send {eof: true}\` right after the last; timed from the connect request to the sink's
  answer. Then the \`closed\` message must come, with bytesIn 1 GiB, bytesOut the answer's length and no
  error. The baseline writes the same bytes in the same $TUN_CHUNK_KIB KiB pieces straight to the sink, shuts
  its side down and reads the answer, timed from connect.
- 15b: \`port.connect\` to the source, then every \`tunnel\` message's data checked against the pattern until
  \`eof\`, which stops the clock; then \`port.send {eof: true}\` and the \`closed\` message (bytesOut 1 GiB, no
  error). The baseline reads the source until EOF into the same 256 KiB buffer, checked the same way.
- 15: two placements. 15a/15b, one CPU for the sandbox: the agent relays on the CPU the sink or source
  uses too (as in a one-vCPU sandbox whose client is on another machine), and the straight copy has no relay
  at all, so the relay's work comes out of the server's CPU. 15c/15d: no pinning; the three processes share
  the two CPUs as the scheduler likes. In both, \`tcp_relay.c\` stands in the agent's place as a reference:
  a relay with no protocol (256 KiB reads, blocking writes, no framing, no masking, no queue), on the agent's
  CPU and at its nice level (the agent raises its priority to -10 when it runs as root). Its ratio to the
  straight copy is the most any relay in the agent's place reaches here; "the tunnel makes N× of it" is
  what the protocol costs. Peak RSS as in 9 (VmHWM reset before each run, checked against VmRSS sampled
  every 10 ms), the largest of each direction's runs.
NOTES
fi
if want 16; then
	cat <<NOTES
- 16: the agent lists the listening TCP sockets of its network namespace (netlink sock_diag) every
  --port-scan-ms, but only while it has a child process, and sends \`port.opened\` for each new one. The client
  subscribes to \`port.opened\` and \`port.closed\`, starts one idle child through the agent (\`exec\` of
  \`sleep 3600\`, background, killOnDisconnect) and is itself the listener: $PL_COUNT times, it waits a random
  0 to --port-scan-ms ms (a server starts at any moment of the interval), binds a free 127.0.0.1 port, and
  times from just before listen() (CLOCK_MONOTONIC) to the arrival of that port's \`port.opened\`; then it
  closes the socket and waits for its \`port.closed\` before the next. 16a: the agent of 15, --port-scan-ms
  $PL_SCAN_MS (the default); 16b: an agent of its own with --port-scan-ms $PL_FAST_MS. Agents on CPU $SRV_CPU,
  the client on CPU $CLI_CPU. The cost row is measured before the listeners, over 2 s with the idle child:
  the context switches of the agent's threads, and its CPU time from /proc/PID/schedstat (ns, where
  /proc/PID/stat has 10 ms ticks); each scan is one wake-up. Without a child the agent does not scan.
- 16: a new listener's \`port.opened\` names its process: the agent finds it by reading the link of every
  open fd of every process (/proc/*/fd, until the socket's inode), in its event loop. That walk is part of
  the delay, and grows with what else runs: a machine with processes holding thousands of fds (other test
  suites running) makes single detections take hundreds of ms, and stalls the agent meanwhile. The row
  gives the fds and processes there were before and after.
NOTES
fi
AGENTS=""
[[ -z $AGENT_RC ]] || AGENTS+=", the agent of 2, 3, 5 and 6 with $AGENT_RC"
[[ -z $XAGENT_RC ]] || AGENTS+=", the agent of 7-9 with $XAGENT_RC"
[[ -z $FAGENT_RC ]] || AGENTS+=", the agent of 10 and 11 with $FAGENT_RC"
[[ -z $EAGENT_RC ]] || AGENTS+=", the agent of 12-14 with $EAGENT_RC"
[[ -z $PAGENT_RC ]] || AGENTS+=", the agent of 15 and 16a with $PAGENT_RC"
[[ -z $QAGENT_RC ]] || AGENTS+=", the agent of 16b with $QAGENT_RC"
[[ -z $AGENTS ]] || echo "- Exit statuses after SIGTERM (0 = graceful):${AGENTS#,}."
