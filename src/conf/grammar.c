/*
 * conf/grammar.c - the grammars of configuration values.
 *
 * Text in; a value, or a short predicate ("has an invalid port") out.
 * Nothing here knows keys, nodes or positions, so the setters, the public
 * parsers of conf.h and the tools that use them (hepdump, hepgen, ...)
 * share one definition of each grammar.
 */
#include "conf/internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* ---- names --------------------------------------------------------------- */

static bool is_name_char(char c)
{
    return conf_is_alpha(c) || conf_is_digit(c) || c == '_' || c == '-';
}

/* Destination and route names: what may appear bare in a key path. */
bool conf_is_name(const char *s, size_t len)
{
    if (len == 0 || len > CONF_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(s[i]))
            return false;
    return true;
}

/* ---- numbers, sizes, durations, booleans ---------------------------------- */

/* A suffix after the digits and what it multiplies by. */
struct unit {
    const char *suffix;
    uint64_t scale;
};

#define BYTES_PER_KIB   UINT64_C(1024)
#define BYTES_PER_MIB   (1024 * BYTES_PER_KIB)

static const struct unit number_units[] = {
    { "", 1 },
};

static const struct unit size_units[] = {
    { "", 1 },
    { "K", BYTES_PER_KIB },
    { "k", BYTES_PER_KIB },
    { "M", BYTES_PER_MIB },
    { "m", BYTES_PER_MIB },
};

static const struct unit duration_units[] = {
    { "ms", 1 },
    { "s", MS_PER_SECOND },
    { "m", MS_PER_MINUTE },
    { "h", MS_PER_HOUR },
    { "", MS_PER_SECOND },              /* a bare number is seconds */
};

#define COUNT_OF(a) (sizeof (a) / sizeof (a)[0])

/*
 * The one decimal reader: the digits at *s (none reads as 0), *s moved past
 * all of them.  False when the value does not fit a uint64_t; the caller
 * still sees where the digits end, so what follows them is judged first.
 */
static bool conf_read_decimal(const char **s, uint64_t *v)
{
    const char *p = *s;
    uint64_t n = 0;
    bool fits = true;
    for (; conf_is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            fits = false;
        else
            n = n * 10 + d;
    }
    *s = p;
    *v = n;
    return fits;
}

/* Decimal digits and one of units; "-5" and overflow are out of range rather than syntax. */
static enum conf_number_status parse_scaled(const char *text, const struct unit *units, size_t nunits,
                                            uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = text;
    bool negative = *s == '-';
    uint64_t v;
    if (negative)
        s++;
    if (!conf_is_digit(*s))
        return CONF_NUMBER_SYNTAX;
    bool fits = conf_read_decimal(&s, &v);
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(s, units[i].suffix) != 0)
            continue;
        if (!fits || (negative && v != 0) || v > UINT64_MAX / units[i].scale)
            return CONF_NUMBER_RANGE;
        v *= units[i].scale;
        if (v < min || v > max)
            return CONF_NUMBER_RANGE;
        *out = v;
        return CONF_NUMBER_OK;
    }
    return CONF_NUMBER_SYNTAX;
}

enum conf_number_status conf_parse_number(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    return parse_scaled(text, number_units, COUNT_OF(number_units), min, max, out);
}

enum conf_number_status conf_parse_size(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    return parse_scaled(text, size_units, COUNT_OF(size_units), min, max, out);
}

/* "250ms", "30s", "5m", "4h": the largest unit that divides ms. */
const char *conf_format_duration(uint64_t ms, char *buf, size_t size)
{
    if (ms != 0 && ms % MS_PER_HOUR == 0)
        snprintf(buf, size, "%" PRIu64 "h", ms / MS_PER_HOUR);
    else if (ms != 0 && ms % MS_PER_MINUTE == 0)
        snprintf(buf, size, "%" PRIu64 "m", ms / MS_PER_MINUTE);
    else if (ms % MS_PER_SECOND == 0)
        snprintf(buf, size, "%" PRIu64 "s", ms / MS_PER_SECOND);
    else
        snprintf(buf, size, "%" PRIu64 "ms", ms);
    return buf;
}

/* YAML 1.2 core schema booleans. */
int conf_parse_bool(const char *s)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return 1;
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return 0;
    return -1;
}

/* ---- host names and host:port -------------------------------------------- */

/*
 * A DNS name: dot-separated labels of letters, digits, '-' (not first or
 * last) and '_' (container names have it); the last label is not all digits,
 * so a mistyped address such as 10.0.0.300 is not taken for a name.
 */
static bool is_host_name(const char *s, size_t len)
{
    if (len == 0 || len > CONF_HOST_MAX)
        return false;
    size_t start = 0;
    bool numeric = false;           /* the label just ended */
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!is_name_char(s[i]))
                return false;
            continue;
        }
        size_t label = i - start;
        if (label == 0 || label > CONF_LABEL_MAX || s[start] == '-' || s[i - 1] == '-')
            return false;
        numeric = true;
        for (size_t j = start; j < i; j++)
            numeric = numeric && conf_is_digit(s[j]);
        start = i + 1;
    }
    return !numeric;
}

/* A host name, or an IPv4 or IPv6 address without brackets. */
bool conf_is_host(const char *s, size_t len)
{
    char host[CONF_HOST_MAX + 1];
    unsigned char addr[sizeof(struct in6_addr)];
    if (is_host_name(s, len))
        return true;
    if (len == 0 || len >= sizeof host)
        return false;
    memcpy(host, s, len);
    host[len] = '\0';
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/* Key prefixes, ACL user and Sentinel master names go into commands as they are. */
bool conf_is_token(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

/* Splits text and reads its port (0 to 65535); NULL or a predicate. */
const char *conf_split_host_port(const char *text, struct conf_host_port *hp)
{
    const char *port;
    uint64_t portnum;

    hp->host = text;
    hp->bracketed = *text == '[';
    if (hp->bracketed) {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return "has an unclosed [";
        hp->host++;
        hp->hlen = (size_t)(close - hp->host);
        if (close[1] != ':')
            return "has no port";
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL)
            return "has no port";
        hp->hlen = (size_t)(colon - text);
        if (memchr(text, ':', hp->hlen) != NULL)
            return "needs [brackets] around an IPv6 address";
        port = colon + 1;
    }
    if (!conf_is_digit(port[0]) || strlen(port) > CONF_PORT_DIGITS ||
        conf_parse_number(port, 0, CONF_PORT_MAX, &portnum) != CONF_NUMBER_OK)
        return "has an invalid port";
    hp->port = (unsigned)portnum;
    return NULL;
}

/* A host name, or a numeric IPv6 address in brackets; port 1 to 65535. */
const char *conf_check_endpoint(const char *text, struct conf_host_port *hp)
{
    const char *why;

    if (*text == '\0')
        return "is empty";
    if ((why = conf_split_host_port(text, hp)) != NULL)
        return why;
    if (hp->port == 0)
        return "has port 0";
    if (hp->bracketed) {
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (hp->hlen >= sizeof addr)
            return "is not a numeric IP address";
        memcpy(addr, hp->host, hp->hlen);
        addr[hp->hlen] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return "is not a numeric IP address";
    } else if (!conf_is_host(hp->host, hp->hlen)) {
        return "has an invalid host name";
    }
    return NULL;
}

/* ---- public value parsers ------------------------------------------------------ */

#define ADDR_UDP_PREFIX "udp:"
#define ADDR_TCP_PREFIX "tcp:"
#define ADDR_TLS_PREFIX "tls:"
#define ADDR_PREFIX_LEN 4

static const char *parse_addr(const char *text, struct conf_addr *out, bool names)
{
    char host[INET6_ADDRSTRLEN];
    size_t len = strlen(text);

    if (len == 0)
        return "is empty";
    if (len >= sizeof out->text)
        return "is too long";
    if (strncmp(text, ADDR_UDP_PREFIX, ADDR_PREFIX_LEN) == 0)
        out->transport = CONF_UDP;
    else if (strncmp(text, ADDR_TCP_PREFIX, ADDR_PREFIX_LEN) == 0)
        out->transport = CONF_TCP;
    else if (strncmp(text, ADDR_TLS_PREFIX, ADDR_PREFIX_LEN) == 0) {
        out->transport = CONF_TCP;
        out->tls = true;
    } else
        return "must start with udp:, tcp: or tls:";

    struct conf_host_port hp;
    const char *why = conf_split_host_port(text + ADDR_PREFIX_LEN, &hp);
    if (why != NULL)
        return why;
    unsigned portnum = hp.port;
    size_t hlen = hp.hlen;
    bool bracketed = hp.bracketed;
    const char *h = hp.host;

    if (hlen < sizeof host) {
        memcpy(host, h, hlen);
        host[hlen] = '\0';
    }
    if (hlen < sizeof host && inet_pton(bracketed ? AF_INET6 : AF_INET, host, out->addr) == 1) {
        out->addr_len = (bracketed ? CONF_IPV6_BITS : CONF_IPV4_BITS) / CHAR_BIT;
    } else if (names && !bracketed && is_host_name(h, hlen)) {
        memcpy(out->host, h, hlen);     /* is_host_name() bounds hlen by CONF_HOST_MAX */
        out->host[hlen] = '\0';
    } else {
        return names ? "is not a numeric IP address or a host name" : "is not a numeric IP address";
    }
    out->port = portnum;
    memcpy(out->text, text, len + 1);
    return NULL;
}

/* On failure *out is all zeroes (transport 0): never mistaken for an address. */
const char *conf_parse_addr(const char *text, struct conf_addr *out)
{
    memset(out, 0, sizeof *out);
    const char *why = parse_addr(text, out, false);
    if (why != NULL)
        memset(out, 0, sizeof *out);
    return why;
}

const char *conf_parse_target(const char *text, struct conf_addr *out)
{
    memset(out, 0, sizeof *out);
    const char *why = parse_addr(text, out, true);
    if (why != NULL)
        memset(out, 0, sizeof *out);
    return why;
}

const char *conf_parse_cidr(const char *text, struct conf_cidr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - text) : strlen(text);

    memset(out, 0, sizeof *out);
    if (*text == '\0')
        return "is empty";
    if (hlen == 0 || hlen >= sizeof host)
        return "is not a numeric IP address";
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    unsigned bits;
    int family;
    if (memchr(host, ':', hlen) != NULL) {
        family = AF_INET6;
        bits = CONF_IPV6_BITS;
    } else {
        family = AF_INET;
        bits = CONF_IPV4_BITS;
    }
    out->addr_len = bits / CHAR_BIT;
    if (inet_pton(family, host, out->addr) != 1) {
        memset(out, 0, sizeof *out);
        return "is not a numeric IP address";
    }
    out->prefix = bits;
    if (slash != NULL) {
        const char *s = slash + 1;
        uint64_t prefix;
        if (!conf_is_digit(s[0]) || strlen(s) > CONF_PREFIX_DIGITS ||
            conf_parse_number(s, 0, bits, &prefix) != CONF_NUMBER_OK) {
            memset(out, 0, sizeof *out);
            return "has an invalid prefix length";
        }
        out->prefix = (unsigned)prefix;
    }
    for (unsigned bit = out->prefix; bit < bits; bit++) {
        if (out->addr[bit / CHAR_BIT] & (0x80u >> (bit % CHAR_BIT))) {
            memset(out, 0, sizeof *out);
            return "has host bits set";
        }
    }
    return NULL;
}

const char *conf_parse_duration(const char *text, uint64_t *ms)
{
    if (*text == '\0')
        return "is empty";
    if (!conf_is_digit(*text))
        return "is not a valid duration";
    const char *s = text;
    uint64_t v;
    bool fits = conf_read_decimal(&s, &v);
    for (size_t i = 0; i < COUNT_OF(duration_units); i++) {
        if (strcmp(s, duration_units[i].suffix) == 0) {
            if (!fits || v > UINT64_MAX / duration_units[i].scale)
                return "is too large";
            *ms = v * duration_units[i].scale;
            return NULL;
        }
    }
    const char *unit = s;
    while (conf_is_alpha(*s))
        s++;
    if (s > unit && *s == '\0')
        return "has an unknown unit (use ms, s, m or h)";
    return "is not a valid duration";
}

bool conf_cidr_contains(const struct conf_cidr *c, unsigned addr_len, const uint8_t *addr)
{
    if (addr == NULL || addr_len != c->addr_len)
        return false;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

bool conf_cidr_any(const struct conf_cidr *list, size_t n, unsigned addr_len, const uint8_t *addr)
{
    for (size_t i = 0; i < n; i++)
        if (conf_cidr_contains(&list[i], addr_len, addr))
            return true;
    return false;
}
