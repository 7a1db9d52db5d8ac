/*
 * ctl.c - `heprouter ctl [-s SOCKET] [-c FILE] [-T SECONDS] [-n LINES]
 * COMMAND [ARGS...]`: sends "COMMAND ARGS\n" to the control socket, reads
 * the one answer line and prints it as it came.  The exit status says
 * whether the answer is an error (a top-level "error" key), so scripts
 * need no JSON parser for that.
 *
 * An answer with "stream":true (a tap) is followed by lines: they are
 * printed as they come (the answer itself goes to stderr), until the
 * router closes the stream, LINES lines were printed (-n), or -T's
 * seconds have passed (without -T, until interrupted).
 *
 * Every wait for the answer is bounded by one deadline (-T) through
 * poll(), and the answer by CTL_ANSWER_MAX bytes.
 */
#include "ctl.h"

#include "clock.h"
#include "conf.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void ctl_usage(FILE *out)
{
    fprintf(out,
            "usage: heprouter ctl [-s SOCKET] [-c FILE] [-T SECONDS] [-n LINES] COMMAND [ARGS...]\n"
            "  -s SOCKET   the control socket (default %s)\n"
            "  -c FILE     the control.socket of this configuration\n"
            "  -T SECONDS  how long to wait for the answer (default %d);\n"
            "              for a stream (tap), how long to print its lines\n"
            "  -n LINES    for a stream, stop after LINES lines\n"
            "  `heprouter ctl help` lists the commands\n",
            CTL_DEFAULT_SOCKET, CTL_DEFAULT_TIMEOUT_S);
}

static int64_t now_ms(void)
{
    return (int64_t)clock_mono_ms();
}

/*
 * The control.socket of the configuration file (malloc'ed), or NULL after
 * saying why on stderr (the file's own errors as FILE:LINE:COL).
 */
static char *config_socket(const char *file)
{
    struct conf *c = conf_load(file, stderr);
    if (c == NULL) {
        fprintf(stderr, "heprouter ctl: -c %s: configuration has errors\n", file);
        return NULL;
    }
    char *path = c->control_socket != NULL ? strdup(c->control_socket) : NULL;
    if (c->control_socket == NULL)
        fprintf(stderr, "heprouter ctl: -c %s: no control.socket in it\n", file);
    else if (path == NULL)
        fprintf(stderr, "heprouter ctl: out of memory\n");
    conf_free(c);
    return path;
}

/* Waits for events on fd until deadline; 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* "COMMAND ARGS...\n" from the words; NULL when out of memory. */
static char *join_command(int argc, char **argv, size_t *len)
{
    size_t total = 1;
    for (int i = 0; i < argc; i++)
        total += strlen(argv[i]) + 1;
    char *line = malloc(total);
    if (line == NULL)
        return NULL;
    size_t off = 0;
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (i > 0)
            line[off++] = ' ';
        memcpy(line + off, argv[i], n);
        off += n;
    }
    line[off++] = '\n';
    line[off] = '\0';
    *len = off;
    return line;
}

/* Connects without blocking; -1 with a message on stderr. */
static int connect_socket(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "heprouter ctl: %s: socket path longer than %zu bytes\n", path,
                sizeof sa.sun_path - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "heprouter ctl: socket: %s\n", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&sa, sizeof sa) != 0) {
        /* EAGAIN on a Unix socket: the server's backlog is full */
        fprintf(stderr, "heprouter ctl: cannot connect to %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline, const char *path)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w > 0)
                continue;
            fprintf(stderr, "heprouter ctl: %s: %s\n", path,
                    w == 0 ? "timed out sending the command" : strerror(errno));
            return -1;
        }
        fprintf(stderr, "heprouter ctl: %s: send: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Reads up to the first LF (not kept); the line, NUL-terminated, or NULL.
 * What came after the LF is left at buf + *len + 1, *extra bytes.
 */
static char *read_answer(int fd, int64_t deadline, const char *path, size_t *len, size_t *extra)
{
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        fprintf(stderr, "heprouter ctl: out of memory\n");
        return NULL;
    }
    for (;;) {
        if (used + 1 >= cap) {
            if (cap >= CTL_ANSWER_MAX) {
                fprintf(stderr, "heprouter ctl: %s: answer longer than %u bytes\n", path, CTL_ANSWER_MAX);
                break;
            }
            cap *= 2;
            char *n = realloc(buf, cap);
            if (n == NULL) {
                fprintf(stderr, "heprouter ctl: out of memory\n");
                break;
            }
            buf = n;
        }
        ssize_t n = recv(fd, buf + used, cap - 1 - used, 0);
        if (n > 0) {
            char *lf = memchr(buf + used, '\n', (size_t)n);
            used += (size_t)n;
            if (lf != NULL) {
                *lf = '\0';
                *len = (size_t)(lf - buf);
                *extra = used - *len - 1;
                return buf;
            }
            continue;
        }
        if (n == 0) {
            fprintf(stderr, "heprouter ctl: %s: connection closed %s\n", path,
                    used > 0 ? "in the middle of the answer" : "without an answer");
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w > 0)
                continue;
            fprintf(stderr, "heprouter ctl: %s: %s\n", path,
                    w == 0 ? "timed out waiting for the answer" : strerror(errno));
            break;
        }
        fprintf(stderr, "heprouter ctl: %s: recv: %s\n", path, strerror(errno));
        break;
    }
    free(buf);
    return NULL;
}

/* ---- a top-level key of a JSON object, without a JSON library ---- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* p at the opening quote; returns past the closing one, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Skips one value (nested ones by bracket depth); NULL when malformed. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        char ch = *p;
        if (ch == '"') {
            p = skip_string(p, end);
            if (p == NULL)
                return NULL;
            if (depth == 0)
                return p;
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return p;           /* end of a scalar at the enclosing object's end */
            if (--depth == 0)
                return p + 1;
        } else if (ch == ',' && depth == 0) {
            return p;
        }
        p++;
    }
    return depth == 0 ? p : NULL;
}

/*
 * Finds the top-level key of the object in s.  Returns 1 (and the raw
 * value's span) when present, 0 when absent, -1 when s is no object.
 */
static int find_key(const char *s, size_t len, const char *key, const char **val, size_t *vlen)
{
    size_t klen = strlen(key);
    const char *p = s, *end = s + len;
    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return -1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return 0;
    while (p < end) {
        if (*p != '"')
            return -1;
        const char *k = p + 1;
        p = skip_string(p, end);
        if (p == NULL)
            return -1;
        bool is_key = (size_t)(p - 1 - k) == klen && memcmp(k, key, klen) == 0;
        p = skip_ws(p, end);
        if (p == end || *p != ':')
            return -1;
        p = skip_ws(p + 1, end);
        const char *v = p;
        p = skip_value(p, end);
        if (p == NULL || p == v)
            return -1;
        if (is_key) {
            *val = v;
            *vlen = (size_t)(p - v);
            return 1;
        }
        p = skip_ws(p, end);
        if (p < end && *p == '}')
            return 0;
        if (p == end || *p != ',')
            return -1;
        p = skip_ws(p + 1, end);
    }
    return -1;
}

/* Prints the error value to stderr, a string without its quotes and escapes. */
static void print_error(const char *v, size_t len)
{
    fputs("heprouter ctl: ", stderr);
    if (len >= 2 && v[0] == '"') {
        for (size_t i = 1; i + 1 < len; i++) {
            if (v[i] == '\\' && i + 2 < len) {
                char e = v[++i];
                fputc(e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e, stderr);
            } else {
                fputc(v[i], stderr);
            }
        }
    } else {
        fwrite(v, 1, len, stderr);
    }
    fputc('\n', stderr);
}

/* A stream's notice of lines it lost, which -n does not count. */
static bool is_notice(const char *line, size_t len)
{
    static const char json_lost[] = "{\"lost\":";
    return (len > 0 && line[0] == '#') ||
           (len >= sizeof json_lost - 1 && memcmp(line, json_lost, sizeof json_lost - 1) == 0);
}

/*
 * Copies a stream's lines to stdout as they come, whole lines only: first
 * the pending bytes read with the answer, then the socket's.  Ends at EOF
 * (the router closed it), until (monotonic ms), or max_lines lines (0: no
 * limit); the exit status.
 */
static int print_stream(int fd, const char *pending, size_t npending, int64_t until, uint64_t max_lines,
                        const char *path)
{
    size_t cap = npending < CTL_STREAM_READ ? CTL_STREAM_READ : 2 * npending, used = 0;
    char *buf = malloc(cap);
    uint64_t lines = 0;
    int rc = CTL_EXIT_FAIL;
    if (buf == NULL) {
        fprintf(stderr, "heprouter ctl: out of memory\n");
        free(buf);
        return CTL_EXIT_FAIL;
    }
    memcpy(buf, pending, npending);
    used = npending;
    for (;;) {
        size_t start = 0;
        char *lf;
        while ((lf = memchr(buf + start, '\n', used - start)) != NULL) {
            size_t n = (size_t)(lf - (buf + start)) + 1;
            fwrite(buf + start, 1, n, stdout);
            if (!is_notice(buf + start, n))
                lines++;
            start += n;
            if (max_lines > 0 && lines >= max_lines) {
                fflush(stdout);
                free(buf);
                return CTL_EXIT_OK;
            }
        }
        fflush(stdout);
        memmove(buf, buf + start, used - start);
        used -= start;
        if (used == cap) {
            if (cap >= CTL_ANSWER_MAX) {
                fprintf(stderr, "heprouter ctl: %s: a line longer than %u bytes\n", path, CTL_ANSWER_MAX);
                break;
            }
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                fprintf(stderr, "heprouter ctl: out of memory\n");
                break;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + used, cap - used, 0);
        if (n > 0) {
            used += (size_t)n;
            continue;
        }
        if (n == 0) {
            fprintf(stderr, "heprouter ctl: %s: the router ended the stream\n", path);
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, until);
            if (w > 0)
                continue;
            if (w == 0)
                rc = CTL_EXIT_OK;   /* -T: the time asked for is over */
            else
                fprintf(stderr, "heprouter ctl: %s: poll: %s\n", path, strerror(errno));
            break;
        }
        fprintf(stderr, "heprouter ctl: %s: recv: %s\n", path, strerror(errno));
        break;
    }
    free(buf);
    return rc;
}

int ctl_main(int argc, char **argv)
{
    const char *path = NULL;
    const char *config = NULL;
    double timeout_s = CTL_DEFAULT_TIMEOUT_S;
    bool timeout_given = false;
    uint64_t max_lines = 0;         /* 0: no limit */
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "config", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 'T' },
        { "lines", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    optind = 0;                     /* glibc: start afresh, whatever parsed before */
    /* "+": options end at COMMAND, so its arguments may start with '-' */
    while ((opt = getopt_long(argc, argv, "+s:c:T:n:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            path = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'T': {
            char *end;
            errno = 0;
            timeout_s = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !isfinite(timeout_s) || timeout_s <= 0 ||
                timeout_s > (double)(INT64_MAX / 1000 / 2)) {
                fprintf(stderr, "heprouter ctl: -T %s: not a positive number of seconds\n", optarg);
                return CTL_EXIT_USAGE;
            }
            timeout_given = true;
            break;
        }
        case 'n': {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' || n == 0) {
                fprintf(stderr, "heprouter ctl: -n %s: not a positive number of lines\n", optarg);
                return CTL_EXIT_USAGE;
            }
            max_lines = n;
            break;
        }
        case 'h':
            ctl_usage(stdout);
            return CTL_EXIT_OK;
        default:
            ctl_usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "heprouter ctl: no command\n");
        ctl_usage(stderr);
        return CTL_EXIT_USAGE;
    }

    /* one line per command: a line break inside would send a second one */
    for (int i = optind; i < argc; i++) {
        if (strpbrk(argv[i], "\r\n") != NULL) {
            fprintf(stderr, "heprouter ctl: an argument contains a line break\n");
            return CTL_EXIT_USAGE;
        }
    }

    /* -s, else -c's control.socket, else the default */
    char *from_config = NULL;
    if (path == NULL && config != NULL) {
        from_config = config_socket(config);
        if (from_config == NULL)
            return CTL_EXIT_FAIL;
        path = from_config;
    }
    if (path == NULL)
        path = CTL_DEFAULT_SOCKET;

    size_t cmdlen = 0;
    char *cmd = join_command(argc - optind, argv + optind, &cmdlen);
    if (cmd == NULL) {
        fprintf(stderr, "heprouter ctl: out of memory\n");
        free(from_config);
        return CTL_EXIT_FAIL;
    }
    int64_t deadline = now_ms() + (int64_t)(timeout_s * 1000.);
    int fd = connect_socket(path);
    if (fd < 0) {
        free(cmd);
        free(from_config);
        return CTL_EXIT_FAIL;
    }
    size_t len = 0, extra = 0;
    char *answer = NULL;
    if (send_all(fd, cmd, cmdlen, deadline, path) == 0)
        answer = read_answer(fd, deadline, path, &len, &extra);
    free(cmd);
    if (answer == NULL) {
        close(fd);
        free(from_config);
        return CTL_EXIT_FAIL;
    }

    /* the answer's own bytes end at len; a stream's first lines may follow */
    size_t alen = len;
    if (alen > 0 && answer[alen - 1] == '\r')
        answer[--alen] = '\0';
    const char *val = NULL;
    size_t vlen = 0;
    int found = find_key(answer, alen, "error", &val, &vlen);
    const char *sval = NULL;
    size_t slen = 0;
    bool stream = found == 0 && find_key(answer, alen, "stream", &sval, &slen) == 1 && slen == 4 &&
                  memcmp(sval, "true", 4) == 0;
    int rc = CTL_EXIT_OK;
    if (stream) {
        fprintf(stderr, "heprouter ctl: %.*s\n", (int)alen, answer);
        int64_t until = timeout_given ? now_ms() + (int64_t)(timeout_s * 1000.) : INT64_MAX;
        rc = print_stream(fd, answer + len + 1, extra, until, max_lines, path);
    } else {
        fwrite(answer, 1, alen, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        if (found < 0) {
            fprintf(stderr, "heprouter ctl: %s: the answer is not a JSON object\n", path);
            rc = CTL_EXIT_FAIL;
        } else if (found > 0) {
            print_error(val, vlen);
            rc = CTL_EXIT_FAIL;
        }
    }
    close(fd);
    free(answer);
    free(from_config);
    return rc;
}
