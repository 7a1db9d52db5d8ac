/*
 * privileges.h - who heprouter runs as: `user:`, `group:` and `allow_root:`
 * in heprouter.yaml(5), and -u USER.
 *
 * heprouter binds its listeners and opens its files (log, control socket,
 * HTTP server, ready file) with the privileges it was started with, then,
 * before any worker routes a packet, sets its groups (the user's, from
 * initgroups()), its gid and its uid, and checks that root cannot be
 * regained.  The packet path does not run as root unless allow_root says so.
 */
#ifndef HEPROUTER_PRIVILEGES_H
#define HEPROUTER_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Room for a privileges_*() message. */
#define PRIVILEGES_WHY_MAX 256

struct privileges {
    bool change;                    /* a user was named */
    char user[64];                  /* its name, for initgroups() and logs */
    uid_t uid;
    gid_t gid;
};

/*
 * Resolves user (a name or a number; NULL: none) and group (NULL: the
 * user's primary group) into *out.  0, or -1 with why ("user
 * \"heprouter\" does not exist", "group: needs user: or -u").
 */
int privileges_resolve(const char *user, const char *group, struct privileges *out, char *why, size_t len);

/*
 * Becomes out->user when one was named: nothing to do when already that
 * uid and gid, else (as root) setgroups, setgid, setuid and the check that
 * setuid(0) now fails.  Then refuses an effective uid 0 unless allow_root.
 * 0, or -1 with why.  Call it once, before the workers start.
 */
int privileges_drop(const struct privileges *p, bool allow_root, char *why, size_t len);

#endif
