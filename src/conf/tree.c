/*
 * conf/tree.c - pass 1: YAML -> a tree of nodes; reading the tree.
 *
 * libyaml's events become nodes that keep their line and column.  Anchors,
 * aliases, tags, deep nesting and a second document are refused here, so
 * the later passes see scalars, lists and mappings only.  This is the only
 * file that includes yaml.h.
 */
#include "conf/internal.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- pass 1: YAML -> node tree -------------------------------------------- */

static struct mark mark_from_yaml(yaml_mark_t m)
{
    struct mark r = { m.line + 1, m.column + 1 };
    return r;
}

/* Reader errors carry a byte offset, not a mark. */
static struct mark mark_from_offset(const char *buf, size_t len, size_t offset)
{
    struct mark m = { 1, 1 };
    for (size_t i = 0; i < offset && i < len; i++) {
        if (buf[i] == '\n') {
            m.line++;
            m.col = 1;
        } else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
            m.col++;
        }
    }
    return m;
}

void conf_node_free(struct node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nitems; i++)
        conf_node_free(n->items[i]);
    free(n->items);
    free(n->value);
    free(n);
}

static struct node *node_new(struct parse *p, enum node_type type, yaml_mark_t m)
{
    struct node *n = conf_calloc(1, sizeof *n);
    if (n == NULL) {
        p->nomem = true;
        return NULL;
    }
    n->type = type;
    n->mark = mark_from_yaml(m);
    return n;
}

static bool node_append(struct parse *p, struct node *parent, struct node *child)
{
    if (parent->nitems == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        struct node **items = conf_realloc(parent->items, cap * sizeof *items);
        if (items == NULL) {
            p->nomem = true;
            return false;
        }
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->nitems++] = child;
    return true;
}

static void report_yaml_error(struct parse *p, const yaml_parser_t *y, const char *buf, size_t len)
{
    const char *problem = y->problem != NULL ? y->problem : "unknown error";
    switch (y->error) {
    case YAML_MEMORY_ERROR:
        p->nomem = true;
        break;
    case YAML_READER_ERROR:
        conf_error_file(p, mark_from_offset(buf, len, y->problem_offset), "invalid input: %s", problem);
        break;
    default:
        if (y->context != NULL)
            conf_error_file(p, mark_from_yaml(y->problem_mark),
                            "YAML syntax error: %s (%s at line %zu, column %zu)", problem, y->context,
                            y->context_mark.line + 1, y->context_mark.column + 1);
        else
            conf_error_file(p, mark_from_yaml(y->problem_mark), "YAML syntax error: %s", problem);
        break;
    }
}

/* Anchors and aliases would let one node appear under several keys: refused. */
static bool check_properties(struct parse *p, yaml_mark_t m, const yaml_char_t *anchor,
                             const yaml_char_t *tag)
{
    if (anchor != NULL) {
        conf_error_file(p, mark_from_yaml(m), "anchors and aliases are not supported");
        return false;
    }
    if (tag != NULL) {
        conf_error_file(p, mark_from_yaml(m), "tags are not supported");
        return false;
    }
    return true;
}

/*
 * Builds the tree of the only document in buf.  Returns NULL after reporting
 * when the YAML is unusable (syntax, anchors, tags, nesting, no document,
 * several documents).
 */
struct node *conf_load_tree(struct parse *p, const char *buf, size_t len)
{
    yaml_parser_t y;
    if (!yaml_parser_initialize(&y)) {
        p->nomem = true;
        return NULL;
    }
    yaml_parser_set_input_string(&y, (const unsigned char *)buf, len);

    struct node *stack[CONF_DEPTH_MAX];
    size_t depth = 0;
    struct node *root = NULL;
    size_t documents = 0;
    bool bad = false, done = false;

    while (!done && !p->nomem) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&y, &ev)) {
            report_yaml_error(p, &y, buf, len);
            bad = true;
            break;
        }
        struct node *n = NULL;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1) {
                conf_error_file(p, mark_from_yaml(ev.start_mark), "only one YAML document is allowed");
                bad = done = true;
            }
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_ALIAS_EVENT:
            conf_error_file(p, mark_from_yaml(ev.start_mark), "anchors and aliases are not supported");
            bad = true;
            n = node_new(p, NODE_SCALAR, ev.start_mark);
            break;
        case YAML_SCALAR_EVENT:
            if (!check_properties(p, ev.start_mark, ev.data.scalar.anchor, ev.data.scalar.tag))
                bad = true;
            n = node_new(p, NODE_SCALAR, ev.start_mark);
            if (n != NULL) {
                n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                n->len = ev.data.scalar.length;
                n->value = conf_malloc(n->len + 1);
                if (n->value == NULL) {
                    p->nomem = true;
                    free(n);
                    n = NULL;
                    break;
                }
                memcpy(n->value, ev.data.scalar.value, n->len);
                n->value[n->len] = '\0';
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (!check_properties(p, ev.start_mark, ev.data.sequence_start.anchor,
                                  ev.data.sequence_start.tag))
                bad = true;
            n = node_new(p, NODE_SEQUENCE, ev.start_mark);
            break;
        case YAML_MAPPING_START_EVENT:
            if (!check_properties(p, ev.start_mark, ev.data.mapping_start.anchor,
                                  ev.data.mapping_start.tag))
                bad = true;
            n = node_new(p, NODE_MAPPING, ev.start_mark);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
        if (n != NULL) {
            if (depth == 0) {
                root = n;
            } else if (!node_append(p, stack[depth - 1], n)) {
                conf_node_free(n);
                n = NULL;
            }
            if (n != NULL && n->type != NODE_SCALAR) {
                if (depth == CONF_DEPTH_MAX) {
                    conf_error_file(p, n->mark, "nesting is deeper than %d levels", CONF_DEPTH_MAX);
                    bad = done = true;
                } else {
                    stack[depth++] = n;
                }
            }
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y);

    if (bad || p->nomem) {
        conf_node_free(root);
        return NULL;
    }
    if (root == NULL) {
        struct mark start = { 1, 1 };
        conf_error_file(p, start, "the file is empty");
    }
    return root;
}

/* ---- reading the tree ---------------------------------------------------- */

/* A plain empty, "~" or "null": the key is there but says nothing. */
bool conf_node_is_null(const struct node *n)
{
    if (n->type != NODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
           strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

bool conf_node_is(const struct node *n, const char *s)
{
    return n->type == NODE_SCALAR && n->len == strlen(s) && memcmp(n->value, s, n->len) == 0;
}

/* The value of the first key `name` of map, or NULL. */
struct node *conf_map_get(const struct node *map, const char *name)
{
    if (map == NULL || map->type != NODE_MAPPING)
        return NULL;
    for (size_t i = 0; i + 1 < map->nitems; i += 2)
        if (conf_node_is(map->items[i], name))
            return map->items[i + 1];
    return NULL;
}
