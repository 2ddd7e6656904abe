/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Read / write / destructive: the tenant's `classes` override, then the
 * upstream's annotations (MCP defaults: readOnlyHint false, destructiveHint
 * true), then verbs in the tool's name; destructive when nothing says
 * otherwise. Also the names of decisions and classes.
 */

#include "core/policy_int.h"

#define MAX_VERB 32

/* ---- names ----------------------------------------------------------------- */

const char *sg_policy_decision_name(sg_decision_t d)
{
    static const char *const names[] = { "deny", "approve", "allow" };
    return (size_t)d < SG_ARRAY_LEN(names) ? names[d] : "deny";
}

const char *sg_policy_class_name(sg_tool_class_t c)
{
    static const char *const names[] = { "destructive", "write", "read" };
    return (size_t)c < SG_ARRAY_LEN(names) ? names[c] : "destructive";
}

bool sg_policy_class_parse(sg_str_t s, sg_tool_class_t *out)
{
    for (int c = SG_TOOL_CLASS_DESTRUCTIVE; c <= SG_TOOL_CLASS_READ; c++) {
        if (sg_str_eq_cstr(s, sg_policy_class_name((sg_tool_class_t)c))) {
            *out = (sg_tool_class_t)c;
            return true;
        }
    }
    return false;
}

/* ---- classification --------------------------------------------------------- */

static int verb_class(const char *w)
{
    static const char *const reads[] = { "read",    "get",      "list",   "search",  "find",
                                         "query",   "fetch",    "view",   "show",    "describe",
                                         "inspect", "lookup",   "count",  "stat",    "cat",
                                         "ls",      "grep",     "browse", "preview", "info",
                                         "status",  "diff",     "head",   "tail",    "explain",
                                         "check",   "download", "tree",   "watch",   "export" };
    static const char *const writes[] = {
        "write",   "create", "update",  "edit",   "move",   "rename", "copy", "set",    "put",
        "post",    "patch",  "add",     "insert", "append", "upload", "save", "modify", "change",
        "send",    "push",   "commit",  "merge",  "apply",  "mkdir",  "make", "import", "upsert",
        "publish", "enable", "disable", "start",  "stop",   "restart"
    };
    static const char *const destroys[] = {
        "delete", "remove", "rm",       "drop",      "destroy",   "kill",   "purge",
        "erase",  "wipe",   "truncate", "terminate", "reset",     "format", "uninstall",
        "revoke", "unlink", "rmdir",    "shutdown",  "overwrite", "exec",   "execute",
        "eval",   "run",    "shell",    "sudo",      "clear",     "force"
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(destroys); i++) {
        if (strcmp(w, destroys[i]) == 0) {
            return SG_TOOL_CLASS_DESTRUCTIVE;
        }
    }
    for (size_t i = 0; i < SG_ARRAY_LEN(writes); i++) {
        if (strcmp(w, writes[i]) == 0) {
            return SG_TOOL_CLASS_WRITE;
        }
    }
    for (size_t i = 0; i < SG_ARRAY_LEN(reads); i++) {
        if (strcmp(w, reads[i]) == 0) {
            return SG_TOOL_CLASS_READ;
        }
    }
    return -1;
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

/*
 * The most dangerous verb among the words of name; -1 when there is none.
 * Words are runs of letters, also split at camelCase humps: "deleteFile",
 * "getURLList" and "drop-table_v2" give delete/file, get/url/list, drop/table/v.
 */
static int name_class(sg_str_t name)
{
    int best = -1;
    char w[MAX_VERB + 1];
    size_t n = 0;
    for (size_t i = 0; i <= name.len; i++) {
        char c = '\0';
        if (i < name.len) {
            c = name.ptr[i];
        }
        bool letter = is_upper(c) || is_lower(c);
        bool hump = is_upper(c) && i > 0 &&
                    (is_lower(name.ptr[i - 1]) ||
                     (is_upper(name.ptr[i - 1]) && i + 1 < name.len && is_lower(name.ptr[i + 1])));
        if ((!letter || hump) && n > 0) {
            w[SG_MIN(n, (size_t)MAX_VERB)] = '\0';
            int v = n <= MAX_VERB ? verb_class(w) : -1;
            best = v >= 0 && (best < 0 || v < best) ? v : best;
            n = 0;
        }
        if (letter) {
            if (n < MAX_VERB) {
                w[n] = (char)((unsigned char)c | 0x20u);
            }
            n++;
        }
    }
    return best;
}

/* 1 true, 0 false, -1 absent. */
static int hint(sg_str_t annotations, const char *key)
{
    sg_str_t v;
    if (sg_json_object_get(annotations, key, &v) != SG_OK) {
        return -1;
    }
    sg_json_type_t t = sg_json_type(v);
    return t == SG_JSON_TRUE ? 1 : t == SG_JSON_FALSE ? 0 : -1;
}

/* Binary search of the sorted overrides without copying the name. */
static const sg_policy_class_override_t *find_override(const sg_policy_t *p, sg_str_t tool)
{
    size_t lo = 0, hi = p->nclasses;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = p->classes[mid].tool;
        size_t klen = strlen(k);
        int c = memcmp(k, tool.ptr != NULL ? tool.ptr : "", SG_MIN(klen, tool.len));
        c = c != 0 ? c : (klen < tool.len ? -1 : klen > tool.len);
        if (c == 0) {
            return &p->classes[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

sg_tool_class_t sg_policy_classify(const sg_policy_t *p, sg_str_t tool, sg_str_t definition)
{
    const sg_policy_class_override_t *o = p != NULL ? find_override(p, tool) : NULL;
    if (o != NULL) {
        return o->cls;
    }
    sg_str_t name = tool, v, ann = SG_STR_NULL;
    for (size_t i = tool.len; i >= 2; i--) {
        if (tool.ptr[i - 1] == '_' && tool.ptr[i - 2] == '_') {
            name = sg_str_n(tool.ptr + i, tool.len - i);
            break;
        }
    }
    bool is_obj = sg_json_type(definition) == SG_JSON_OBJECT;
    if (is_obj && sg_json_object_get(definition, "name", &v) == SG_OK) {
        (void)sg_json_string_plain(v, &name); /* kept as is when it has escapes */
    }
    if (is_obj && sg_json_object_get(definition, "annotations", &v) == SG_OK &&
        sg_json_type(v) == SG_JSON_OBJECT) {
        ann = v;
    }
    int ro = ann.ptr != NULL ? hint(ann, "readOnlyHint") : -1;
    int de = ann.ptr != NULL ? hint(ann, "destructiveHint") : -1;
    int verb = name_class(name);
    if (ro == 1) {
        return SG_TOOL_CLASS_READ;
    }
    if (de >= 0) {
        return de == 1 ? SG_TOOL_CLASS_DESTRUCTIVE : SG_TOOL_CLASS_WRITE;
    }
    if (ro == 0) { /* modifies; destructiveHint defaults to true unless the name says write */
        return verb == SG_TOOL_CLASS_WRITE ? SG_TOOL_CLASS_WRITE : SG_TOOL_CLASS_DESTRUCTIVE;
    }
    return verb >= 0 ? (sg_tool_class_t)verb : SG_TOOL_CLASS_DESTRUCTIVE;
}
