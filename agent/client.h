/* client: debug subcommands that talk to a running agent (`runra-agent health|ping|info|ps|kill|exec|watch`,
 * the file commands, ports|expose|unexpose|forward, metrics and shutdown), built on the client side of
 * libwebsockets on the same libev loop. Human output by default, JSON with --json (watch: always JSON lines);
 * errors go to stderr with their protocol code and the exit status is non-zero. */
#ifndef RA_CLIENT_H
#define RA_CLIENT_H

#include <stdbool.h>

bool ra_client_is_command(const char *cmd);
/* argv[0] is the subcommand. Returns the process exit status. */
int ra_client_main(int argc, char **argv);

#endif
