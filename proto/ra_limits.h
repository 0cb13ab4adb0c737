/* Every cap and timeout of runra-agent, in one place (curl's habit: a buffer is created with its maximum,
 * and the maximums are named here). Values that the configuration can override are defaults. */
#ifndef RA_LIMITS_H
#define RA_LIMITS_H

/* WebSocket messages. A message over the soft limit is discarded and answered with MESSAGE_TOO_LARGE; once
 * its running length passes the hard ceiling the connection is closed with 1009. */
#define RA_MAX_MESSAGE_BYTES_DEFAULT (16u << 20)
#define RA_MESSAGE_HARD_CEILING_FACTOR 4u
#define RA_MAX_MESSAGE_BYTES_MIN 1024u
#define RA_MAX_MESSAGE_BYTES_MAX (256u << 20)

/* Untrusted msgpack: msgpack-c allocates every declared container before reading it, so the pre-scan bounds
 * how deep and how many elements a message may declare (24 bytes of decoder memory per element). */
#define RA_PROTO_MAX_DEPTH 16
#define RA_PROTO_MAX_ELEMENTS 65536u
#define RA_PROTO_MAX_OP_LEN 64u
#define RA_PROTO_MAX_ERROR_MESSAGE 512u

/* Outbound queue of one connection: past this, the connection is too slow to keep and is dropped. */
#define RA_SESSION_OUT_QUEUE_CAP (64u << 20)
/* One WebSocket frame carries at most this much; bigger messages go out as fragments, one per writable.
 * Larger than a stream message, so that each of those is one frame. */
#define RA_WS_FRAGMENT_BYTES (256u << 10)
/* Socket send buffer asked for each connection: a whole frame fits, so lws rarely has to copy a partial
 * write aside (the kernel caps it at net.core.wmem_max). */
#define RA_SOCKET_SNDBUF_BYTES (1u << 20)
/* How much lws reads from a connection at a time. */
#define RA_WS_READ_BYTES (256u << 10)

/* Connections. lws sizes its fd tables from this, not from RLIMIT_NOFILE. */
#define RA_MAX_FDS 4096u
#define RA_MAX_CONNECTIONS_DEFAULT 1024u

/* Keepalive: a PING after this many seconds of silence (configurable); a hang-up when no traffic proves the
 * peer alive within 2 × that + 5 s. */
#define RA_WS_KEEPALIVE_S_DEFAULT 20u
#define RA_WS_KEEPALIVE_S_MAX 3600u
/* An HTTP request (upgrade or /healthz) must complete its headers within this. */
#define RA_HTTP_HEADER_TIMEOUT_S 10

/* Processes. Memory per process is bounded by 2 x the output buffer (its retained stdout and stderr), the
 * stdin queue, and for each exec with collect 2 x its maxOutputBytes. */
#define RA_OUTPUT_BUFFER_BYTES_DEFAULT (1u << 20) /* retained output per stream */
#define RA_OUTPUT_BUFFER_BYTES_MIN (4u << 10)
#define RA_OUTPUT_BUFFER_BYTES_MAX (64u << 20)
#define RA_MAX_PROCESSES_DEFAULT 1024u
#define RA_PROC_RETAINED_DONE 256u       /* finished processes kept for status and reattach */
#define RA_PROC_RETAINED_OUTPUT_BYTES (16u << 20) /* and their output, all together */
#define RA_AGENT_NICE (-10)             /* the agent's scheduling priority when it runs as root */
#define RA_AGENT_NOFILE 65536u          /* the agent raises its fd limit to this (or the hard limit) */
#define RA_FD_RESERVE 64u               /* fds kept free for new connections and process pipes */
#define RA_DOWNLOADS_PER_CONNECTION 64u /* streamed file.reads in progress */
#define RA_KILL_GRACE_MS 2000u           /* SIGTERM, then SIGKILL after this */
#define RA_STDIN_QUEUE_BYTES (1u << 20)  /* stdin queued for a process that does not read */
#define RA_STREAM_CHUNK_BYTES (64u << 10) /* output bytes per stream message */
#define RA_STREAM_QUEUE_HIGH (1u << 20)  /* stop moving output into a connection queued past this */
#define RA_EXEC_MAX_ARGS 4096
#define RA_EXEC_MAX_ARG_BYTES (256 << 10) /* argv all together */
#define RA_EXEC_MAX_ONE_ARG ((128 << 10) - 1) /* the kernel's limit for one argument (MAX_ARG_STRLEN) */
#define RA_EXEC_MAX_ENV 4096
#define RA_EXEC_MAX_ENV_BYTES (256 << 10)
#define RA_EXEC_MAX_TIMEOUT_MS (7ull * 24 * 3600 * 1000) /* a week */
#define RA_EXEC_COLLECT_DEFAULT (1u << 20)
#define RA_EXEC_COLLECT_MAX (16u << 20)

/* Files. */
#define RA_FILE_INLINE_MAX (8u << 20)   /* file.read returns at most this much per request */
#define RA_FILE_UNSIZED_READ (64u << 10) /* an inline read of a file whose size says 0 (/proc) */
#define RA_FILE_LIST_DEFAULT 1000u      /* entries per file.list page */
#define RA_FILE_LIST_MAX 10000u
#define RA_FILE_LIST_MAX_DEPTH 64u
#define RA_FILE_LIST_MAX_SCAN 1000000u  /* entries one listing may walk */
#define RA_UPLOAD_WRITEBACK_BYTES (8u << 20) /* start writing an upload back to disk every this much */
#define RA_UPLOADS_PER_CONNECTION 64u

/* Events. Every event is kept in a ring (by count and bytes, configurable) for subscribers that are
 * behind or reconnect with sinceSeq; past the ring they are told of a gap. */
#define RA_EVENT_RING_EVENTS_DEFAULT 65536u
#define RA_EVENT_RING_EVENTS_MIN 16u
#define RA_EVENT_RING_EVENTS_MAX (1u << 22)
#define RA_EVENT_RING_BYTES_DEFAULT (8u << 20)
#define RA_EVENT_RING_BYTES_MIN (64u << 10)
#define RA_EVENT_RING_BYTES_MAX (1u << 30)
/* Events move into a connection's queue while it holds less than this; the rest wait in the ring. Above
 * the output's RA_STREAM_QUEUE_HIGH, so a connection busy with output still gets its events in order. */
#define RA_EVENT_QUEUE_HIGH (4u << 20)
#define RA_SUBSCRIPTIONS_MAX 16u       /* per connection */
#define RA_SUBSCRIPTION_ITEMS_MAX 16u  /* patterns, paths and procs, each, per subscription */
#define RA_EVENT_PATTERN_MAX 47u       /* bytes of one event-name pattern */

/* Ports. */
#define RA_PORT_SCAN_MS_DEFAULT 100u    /* listening sockets are looked for this often (while processes run) */
#define RA_PORT_SCAN_MS_MIN 10u
#define RA_PORT_SCAN_MS_MAX 60000u
#define RA_PORTS_SCAN_MAX 4096          /* listening sockets one scan reads */
#define RA_PORT_OWNER_MAX_LINKS 20000u  /* fd links read to find who listens */
#define RA_PORT_WAITERS_PER_CONNECTION 256u /* port.expose requests with waitMs waiting at once */
#define RA_PORT_WAIT_MAX_MS (3600u * 1000) /* port.expose waitMs */
#define RA_PORT_URL_TEMPLATE_MAX 512
/* Tunnels (port.connect). */
#define RA_TUNNEL_READ_BYTES ((256u << 10) - 64) /* read from a port at a time: one message, one frame */
#define RA_TUNNEL_WINDOW_BYTES (1u << 20) /* port.send is answered once less than this waits for the port */
#define RA_TUNNEL_QUEUE_MAX (16u << 20)   /* past this a port.send is refused */
#define RA_TUNNEL_QUEUE_MEM_MAX (17u << 20) /* and past this much memory holding them (chunk headers, room) */
#define RA_TUNNEL_CONNECT_MS_DEFAULT 5000u
#define RA_TUNNEL_CONNECT_MS_MAX 60000u
#define RA_TUNNELS_PER_CONNECTION 256u
#define RA_TUNNELS_MAX 1024u

/* Lifecycle. */
#define RA_SHUTDOWN_GRACE_MS_DEFAULT 2000u /* SIGTERM to every process, SIGKILL after this */
#define RA_SHUTDOWN_GRACE_MS_MAX 600000u
#define RA_RESET_GRACE_MS_DEFAULT 1000u
#define RA_RESET_KEEP_MAX 64u
#define RA_RESET_LIST_MAX 1000u           /* removed paths listed in a reset's reply */
#define RA_LIFETIME_MS_MAX (30ull * 24 * 3600 * 1000) /* timeouts: at most 30 days */
#define RA_METRICS_INTERVAL_MS_MIN 100u

/* The debug client gives up after this. */
#define RA_CLIENT_TIMEOUT_MS 10000

#endif
