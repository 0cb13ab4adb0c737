#!/usr/bin/env bash
# run-local.sh AGENT_BINARY STATE_DIR: starts the agent on loopback for local debugging, with a token kept in
# STATE_DIR/token (created once), and says how to reach it.
set -euo pipefail
agent=$1
state=$(realpath -m "$2")
port=${RUNRA_LOCAL_PORT:-49200}
mkdir -p "$state/workspace"
if [[ ! -s "$state/token" ]]; then
	(umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$state/token")
fi
token=$(cat "$state/token")
cat <<INFO
runra-agent: listening on ws://127.0.0.1:$port (health: http://127.0.0.1:$port/healthz)
runra-agent: token: $token   (kept in $state/token)
runra-agent: try:   RUNRA_AGENT_TOKEN=$token $agent info --url ws://127.0.0.1:$port
runra-agent: stop with Ctrl-C
INFO
exec "$agent" --listen "127.0.0.1:$port" --token-file "$state/token" --workdir "$state/workspace" \
	--log-level "${RUNRA_AGENT_LOG_LEVEL:-info}"
