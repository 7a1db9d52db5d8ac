/*
 * fuzz_conf.c - libFuzzer harness for the configuration loader (src/conf/).
 *
 * The input is the text of a configuration file.  It is written to a memfd
 * (one per process, rewritten and truncated for every input) and loaded
 * with conf_load() through /proc/self/fd/N, as heprouter -c loads a file;
 * the error stream is an open_memstream() buffer.  Checked (any violation
 * aborts), from conf.h's contract:
 *   - success writes nothing, and the conf has a listener, a destination
 *     and a default route naming only destinations it has;
 *   - failure writes at least one line, every line begins with the path
 *     and a ':' and ends with a newline, and there are at most 50 of them
 *     plus one counting the rest;
 *   - a loaded conf goes through what a reload does against a fixed
 *     running conf (BASE_CONF): conf_describe_changes() and
 *     conf_restart_changes() both ways, each line at most CONF_LINE_MAX
 *     bytes and without a newline, then conf_keep_restart_values();
 *   - nothing leaks (LeakSanitizer), on either path.
 * Files a configuration names (store.redis.password_file) are opened for
 * reading only; the loader writes nothing.
 *
 * Build (fuzz/run does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -std=c11 -D_GNU_SOURCE -I src fuzz/fuzz_conf.c libheprouter-core.a \
 *       -lyaml -lz -lpthread -o fuzz_conf
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

/* The running configuration a fuzzed one replaces at "reload". */
static const char BASE_CONF[] =
    "listen: [ \"udp:127.0.0.1:9060\", \"tcp:127.0.0.1:9060\" ]\n"
    "workers: 2\n"
    "store: { type: memory, max_calls: 1000 }\n"
    "ttl: { call: 4h, register: 1h, ended: 30s }\n"
    "orphans: { wait_ms: 200, max_held: 100 }\n"
    "log: { level: info }\n"
    "destinations:\n"
    "  homer:       { targets: [ \"udp:127.0.0.1:9061\" ], auth_key: secret }\n"
    "  voipmonitor: { targets: [ \"tcp:127.0.0.1:9062\", \"udp:127.0.0.1:9064\" ],\n"
    "                 balance: hash, hep_version: 3 }\n"
    "routes:\n"
    "  - name: calls\n"
    "    match: { method: [ INVITE ], src: [ \"10.0.0.0/8\" ] }\n"
    "    to: [ voipmonitor, homer ]\n"
    "  - name: rtcp\n"
    "    match: { proto: [ rtcp ] }\n"
    "    drop: true\n"
    "default: [ homer ]\n";

#define MAX_ERROR_LINES     51      /* 50 errors and a line counting the rest (conf.h) */

int LLVMFuzzerInitialize(int *argc, char ***argv);

static int input_fd = -1;
static char input_path[64];
static struct conf *base;

/* Writes len bytes of data as the whole content of fd. */
static void rewrite(int fd, const uint8_t *data, size_t len)
{
    CHECK(ftruncate(fd, 0) == 0);
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, data + done, len - done, (off_t)done);
        CHECK(n > 0);
        done += (size_t)n;
    }
}

static void on_line(void *arg, const char *line)
{
    size_t *lines = arg;
    size_t len = strlen(line);
    CHECK(len <= CONF_LINE_MAX);
    CHECK(memchr(line, '\n', len) == NULL);
    (*lines)++;
}

/* The error text of a failed load: at least one line, each "PATH:...\n". */
static void check_errors(const char *text, size_t len)
{
    size_t plen = strlen(input_path), lines = 0;

    CHECK(len > 0 && text[len - 1] == '\n');
    CHECK(memchr(text, '\0', len) == NULL);
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        CHECK(nl != NULL);
        CHECK((size_t)(nl - p) > plen && memcmp(p, input_path, plen) == 0 && p[plen] == ':');
        lines++;
        p = nl + 1;
    }
    CHECK(lines <= MAX_ERROR_LINES);
}

/* What a loaded configuration must hold, and what a reload does with it. */
static void check_loaded(struct conf *c)
{
    CHECK(c->nlisten > 0 && c->listen != NULL);
    CHECK(c->ndests > 0 && c->dests != NULL);
    for (size_t i = 0; i < c->ndests; i++) {
        CHECK(c->dests[i].name != NULL && c->dests[i].ntargets > 0);
        CHECK(conf_dest_index(c, c->dests[i].name) == (long)i);
    }
    for (size_t i = 0; i < c->nroutes; i++)
        for (size_t k = 0; k < c->routes[i].nto; k++)
            CHECK(c->routes[i].to[k] < c->ndests);
    for (size_t k = 0; k < c->ndefault_to; k++)
        CHECK(c->default_to[k] < c->ndests);

    size_t lines = 0;
    CHECK(conf_describe_changes(base, c, on_line, &lines) == lines);
    lines = 0;
    CHECK(conf_describe_changes(c, base, on_line, &lines) == lines);
    lines = 0;
    CHECK(conf_restart_changes(base, c, on_line, &lines) == lines);
    lines = 0;
    CHECK(conf_restart_changes(c, base, on_line, &lines) == lines);
    CHECK(conf_keep_restart_values(c, base) == 0);
    lines = 0;
    CHECK(conf_restart_changes(base, c, on_line, &lines) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    input_fd = memfd_create("fuzz_conf.yaml", MFD_CLOEXEC);
    CHECK(input_fd >= 0);
    snprintf(input_path, sizeof input_path, "/proc/self/fd/%d", input_fd);

    rewrite(input_fd, (const uint8_t *)BASE_CONF, sizeof BASE_CONF - 1);
    base = conf_load(input_path, stderr);
    CHECK(base != NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = NULL;
    size_t len = 0;

    rewrite(input_fd, data, size);
    FILE *err = open_memstream(&text, &len);
    CHECK(err != NULL);
    struct conf *c = conf_load(input_path, err);
    CHECK(fclose(err) == 0);

    if (c != NULL) {
        CHECK(len == 0);
        check_loaded(c);
        conf_free(c);
    } else {
        check_errors(text, len);
    }
    free(text);
    return 0;
}

/* base lives as long as the process; free it at exit so LSan stays quiet about it. */
__attribute__((destructor)) static void free_base(void)
{
    conf_free(base);
    base = NULL;
    if (input_fd >= 0)
        close(input_fd);
}
