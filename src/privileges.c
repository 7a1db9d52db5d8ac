/*
 * privileges.c - the privilege drop of privileges.h.
 */
#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A name, or a number when it is all digits (as chown(1) reads them). */
static bool numeric_id(const char *s, unsigned long *id)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    *id = strtoul(s, &end, 10);
    return errno == 0 && *end == '\0';
}

int privileges_resolve(const char *user, const char *group, struct privileges *out, char *why, size_t len)
{
    memset(out, 0, sizeof *out);
    if (user == NULL) {
        if (group != NULL) {
            snprintf(why, len, "group: \"%s\" needs user: (or -u USER)", group);
            return -1;
        }
        return 0;
    }
    unsigned long id;
    struct passwd *pw = numeric_id(user, &id) ? getpwuid((uid_t)id) : getpwnam(user);
    if (pw == NULL) {
        snprintf(why, len, "user \"%s\" does not exist", user);
        return -1;
    }
    out->change = true;
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    snprintf(out->user, sizeof out->user, "%s", pw->pw_name);
    if (group != NULL) {
        struct group *gr = numeric_id(group, &id) ? getgrgid((gid_t)id) : getgrnam(group);
        if (gr == NULL) {
            snprintf(why, len, "group \"%s\" does not exist", group);
            return -1;
        }
        out->gid = gr->gr_gid;
    }
    return 0;
}

static int become(const struct privileges *p, char *why, size_t len)
{
    if (geteuid() == p->uid && getegid() == p->gid && getuid() == p->uid && getgid() == p->gid)
        return 0;                   /* started as that user already (systemd User=, an image's USER) */
    if (geteuid() != 0) {
        snprintf(why, len, "cannot become user %s (uid %lu): not started as root", p->user,
                 (unsigned long)p->uid);
        return -1;
    }
    if (initgroups(p->user, p->gid) != 0) {
        snprintf(why, len, "initgroups(%s): %s", p->user, strerror(errno));
        return -1;
    }
    if (setgid(p->gid) != 0) {
        snprintf(why, len, "setgid(%lu): %s", (unsigned long)p->gid, strerror(errno));
        return -1;
    }
    if (setuid(p->uid) != 0) {
        snprintf(why, len, "setuid(%lu): %s", (unsigned long)p->uid, strerror(errno));
        return -1;
    }
    if (p->uid != 0 && setuid(0) == 0) {
        snprintf(why, len, "root could be regained after setuid(%lu)", (unsigned long)p->uid);
        return -1;
    }
    return 0;
}

int privileges_drop(const struct privileges *p, bool allow_root, char *why, size_t len)
{
    if (p->change && become(p, why, len) != 0)
        return -1;
    if (geteuid() == 0 && !allow_root) {
        snprintf(why, len, "refusing to route packets as root: set user: (or -u USER), or allow_root: true");
        return -1;
    }
    return 0;
}
