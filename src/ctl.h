/*
 * ctl.h - `heprouter ctl`: the client of the control socket (control.h).
 * Sends one command, prints the one JSON answer line, and says by its exit
 * status whether the answer was an error.
 */
#ifndef HEPROUTER_CTL_H
#define HEPROUTER_CTL_H

/*
 * Where the client connects without -s: the path systemd's
 * RuntimeDirectory=heprouter gives (heprouter(8), CONTROL SOCKET).
 */
#define CTL_DEFAULT_SOCKET "/run/heprouter/heprouter.sock"

/* How long ctl waits for the answer without -T, in seconds: long enough for a reload. */
#define CTL_DEFAULT_TIMEOUT_S 10

/* A longer answer is refused (exit 1): the client's memory stays bounded. */
#define CTL_ANSWER_MAX (16u * 1024 * 1024)

/* A stream is read this many bytes at a time (a longer line grows the buffer up to CTL_ANSWER_MAX). */
#define CTL_STREAM_READ 65536

/* Exit statuses. */
#define CTL_EXIT_OK 0               /* the answer has no top-level "error" */
#define CTL_EXIT_FAIL 1             /* an error answer, no connection, a timeout */
#define CTL_EXIT_USAGE 2

/*
 * argv[0] is "ctl"; then [-s SOCKET] [-c FILE] [-T SECONDS] [-n LINES]
 * COMMAND [ARGS...].  Prints the answer on stdout (a stream's lines, the
 * answer then on stderr), errors on stderr; returns the exit status.
 */
int ctl_main(int argc, char **argv);

#endif
