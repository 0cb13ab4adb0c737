# syntax=docker/dockerfile:1
# Three stages:
#   builder  builds the static release binary with the same scripts CI runs (make release)
#   agent    FROM scratch, only the binary: any image can `COPY --from=<this image's agent stage> /runra-agent ...`
#   runtime  an example sandbox image (the default target) that runs the agent as PID 1
#
#   docker build -t runra-agent .                  # runtime example
#   docker build --target agent -t runra-agent-bin .
#   docker run --rm -p 49200:49200 -e RUNRA_AGENT_TOKEN=secret runra-agent

FROM debian:bookworm AS builder
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# scripts/install-deps.sh and scripts/deps.sh fetch Debian's source packages (checksums pinned) and build
# everything with musl, exactly as in CI.
RUN make release && build/release/runra-agent version

FROM scratch AS agent
COPY --from=builder /src/build/release/runra-agent /runra-agent
ENTRYPOINT ["/runra-agent"]

FROM debian:bookworm-slim AS runtime
COPY --from=builder /src/build/release/runra-agent /usr/local/bin/runra-agent
# The agent creates the workdir itself; the token comes from RUNRA_AGENT_TOKEN (or --token-file) at run time.
ENV RUNRA_AGENT_WORKDIR=/workspace
WORKDIR /workspace
EXPOSE 49200
# The agent's own client checks /healthz: no curl or wget needed in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=2s --retries=3 \
	CMD ["/usr/local/bin/runra-agent", "health", "--url", "ws://127.0.0.1:49200"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/runra-agent"]
