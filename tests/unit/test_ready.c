/*
 * test_ready.c - unit tests for src/ready.c: the "listening" lines and
 * their file.
 */
#include "ready.h"
#include "unit.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[] = "/tmp/heprouter-test-ready.XXXXXX";

/* The whole of path into buf (NUL-terminated); the length, or -1. */
static long slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (long)n;
}

/* Entries in dir besides . and .. */
static int entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_format_writes_transport_address_and_port(void)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    char buf[READY_ADDR_MAX];
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    s4.sin_port = htons(40000);
    s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL(ready_format(buf, sizeof buf, "udp", (const struct sockaddr *)&s4), 0);
    CU_ASSERT_STRING_EQUAL(buf, "udp:127.0.0.1:40000");
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(40001);
    s6.sin6_addr = in6addr_loopback;
    CU_ASSERT_EQUAL(ready_format(buf, sizeof buf, "tcp", (const struct sockaddr *)&s6), 0);
    CU_ASSERT_STRING_EQUAL(buf, "tcp:[::1]:40001");
    /* the longest address inet_ntop() writes fits READY_ADDR_MAX */
    s6.sin6_port = htons(65535);
    CU_ASSERT_EQUAL_FATAL(inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &s6.sin6_addr), 1);
    CU_ASSERT_EQUAL(ready_format(buf, sizeof buf, "tcp", (const struct sockaddr *)&s6), 0);
    CU_ASSERT_STRING_EQUAL(buf, "tcp:[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void test_format_refuses_what_it_cannot_write(void)
{
    struct sockaddr_in s4;
    struct sockaddr_un su;
    char small[8] = "x";
    char buf[READY_ADDR_MAX] = "x";
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    s4.sin_port = htons(40000);
    s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    errno = 0;
    CU_ASSERT_EQUAL(ready_format(small, sizeof small, "udp", (const struct sockaddr *)&s4), -1);
    CU_ASSERT_EQUAL(errno, ENOSPC);
    CU_ASSERT_STRING_EQUAL(small, "");
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    errno = 0;
    CU_ASSERT_EQUAL(ready_format(buf, sizeof buf, "udp", (const struct sockaddr *)&su), -1);
    CU_ASSERT_EQUAL(errno, EAFNOSUPPORT);
    CU_ASSERT_STRING_EQUAL(buf, "");
}

static void test_write_replaces_the_file_whole_and_leaves_no_temporary(void)
{
    char path[PATH_MAX], text[256];
    const char *two[] = { "udp:127.0.0.1:40000", "tcp:[::1]:40001" };
    const char *one[] = { "udp:127.0.0.1:40002" };
    snprintf(path, sizeof path, "%s/ready", dir);
    CU_ASSERT_EQUAL(ready_write(path, two, 2), 0);
    CU_ASSERT(slurp(path, text, sizeof text) > 0);
    CU_ASSERT_STRING_EQUAL(text, "listening udp:127.0.0.1:40000\nlistening tcp:[::1]:40001\n");
    CU_ASSERT_EQUAL(ready_write(path, one, 1), 0);
    CU_ASSERT(slurp(path, text, sizeof text) > 0);
    CU_ASSERT_STRING_EQUAL(text, "listening udp:127.0.0.1:40002\n");
    CU_ASSERT_EQUAL(entries(), 1);
    CU_ASSERT_EQUAL(ready_remove(path), 0);
    CU_ASSERT_EQUAL(access(path, F_OK), -1);
    CU_ASSERT_EQUAL(ready_remove(path), 0);          /* already gone: fine */
}

static void test_a_failed_write_leaves_the_old_file(void)
{
    char path[PATH_MAX], text[256];
    const char *lines[] = { "udp:127.0.0.1:40000" };
    /* a directory where the file should go: rename() fails */
    snprintf(path, sizeof path, "%s/taken", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0700), 0);
    errno = 0;
    CU_ASSERT_EQUAL(ready_write(path, lines, 1), -1);
    CU_ASSERT_NOT_EQUAL(errno, 0);
    CU_ASSERT_EQUAL(entries(), 1);                   /* no temporary left */
    CU_ASSERT_EQUAL(rmdir(path), 0);
    /* a directory that does not exist */
    snprintf(path, sizeof path, "%s/no/such/ready", dir);
    CU_ASSERT_EQUAL(ready_write(path, lines, 1), -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_EQUAL(slurp(path, text, sizeof text), -1);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "format writes transport, address and port", test_format_writes_transport_address_and_port },
        { "format refuses what it cannot write", test_format_refuses_what_it_cannot_write },
        { "write replaces the file whole and leaves no temporary",
          test_write_replaces_the_file_whole_and_leaves_no_temporary },
        { "a failed write leaves the old file", test_a_failed_write_leaves_the_old_file },
        { NULL, NULL },
    };
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    int rc = unit_run("ready", tests);
    rmdir(dir);
    return rc;
}
