/* Saved policies kept in step between the store and the engine's table (saved_policies.h). */
#include "saved_policies.h"

#include <pthread.h>
#include <string.h>

#include "log.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "policy/saved.h"
#include "storage.h"

/* Held across a change's two writes (the store, then the table), so that two changes of one name
 * land in the same order in both. */
static pthread_mutex_t change_lock = PTHREAD_MUTEX_INITIALIZER;

static int add_to(const struct policy_record *r, void *all, struct eng_error *err)
{
    return json_object_set(all, r->name, r->document) == 0 ? 0 : eng_no_memory(err);
}

int saved_policies_load(struct storage *st, struct eng_error *err)
{
    json_t *all = json_object();
    if (!all) return eng_no_memory(err);
    /* Under the lock, so that no change of this process lands between the read and the swap. */
    pthread_mutex_lock(&change_lock);
    int rc = policy_store_each(st, add_to, all, err);
    if (rc == 0) rc = policy_saved_replace(all, err);
    pthread_mutex_unlock(&change_lock);
    json_decref(all);
    return rc;
}

/* Tells the other processes of the store that name changed (their tables are reloaded: wakeups.c).
 * The change is made here either way; a process that misses it reloads when its listener is back.
 */
static void tell_others(struct storage *st, const char *name)
{
    struct eng_error err;
    if (storage_notify(st, STORAGE_CHANNEL_POLICIES, name, &err) != 0)
        log_event("warn", "policies", "cannot tell the other servers about policy %s: %s", name,
                  err.message);
}

int saved_policies_check_name(const char *name, struct eng_error *err)
{
    static const char allowed[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    size_t length = strlen(name);
    if (length == 0 || length > SAVED_POLICY_MAX_NAME || strspn(name, allowed) != length ||
        strchr("._-", name[0]))
        return eng_fail(err, ENG_INVALID,
                        "name: 1 to %d ASCII letters, digits, '.', '_' or '-', starting with a "
                        "letter or a digit",
                        SAVED_POLICY_MAX_NAME);
    /* A preset's name, or one its prefix grammar reads ("rand-m9-n2"), would never reach the
     * saved policy; "validate" is POST /v1/policies/validate's path. */
    if (preset_find(name)) return eng_fail(err, ENG_CONFLICT, "name: %s is a preset's name", name);
    if (strcmp(name, "validate") == 0)
        return eng_fail(err, ENG_CONFLICT, "name: validate is reserved");
    return 0;
}

/* The policy's compiled document, or NULL with err: ENG_INVALID with the parser's message. */
static json_t *compile(const json_t *policy, struct eng_error *err)
{
    struct policy *p = policy_parse(policy, err);
    if (!p) return NULL;
    json_t *doc = policy_to_json(p);
    policy_free(p);
    return doc;
}

int saved_policies_put(struct storage *st, const char *name, const json_t *policy,
                       const char *owner, int replace, struct policy_record *out, int *created,
                       struct eng_error *err)
{
    if (saved_policies_check_name(name, err) != 0) return -1;
    json_t *doc = compile(policy, err);
    if (!doc) return -1;
    struct policy_record r = {.name = (char *)name, .document = doc, .owner = (char *)owner};
    pthread_mutex_lock(&change_lock);
    int rc = policy_store_put(st, &r, replace, created, err);
    if (rc == 0) rc = policy_saved_set(name, doc, err);
    pthread_mutex_unlock(&change_lock);
    json_decref(doc);
    if (rc == 0) tell_others(st, name);
    return rc == 0 ? policy_store_get(st, name, out, err) : -1;
}

int saved_policies_delete(struct storage *st, const char *name, struct eng_error *err)
{
    if (preset_find(name))
        return eng_fail(err, ENG_CONFLICT, "%s is a preset, which cannot be deleted", name);
    pthread_mutex_lock(&change_lock);
    int rc = policy_store_delete(st, name, err);
    if (rc == 0) policy_saved_remove(name);
    pthread_mutex_unlock(&change_lock);
    if (rc == 0) tell_others(st, name);
    return rc;
}

/* owner's key (or, key NULL, its item index) replaced by its compiled document when the policy
 * there names a saved one. */
static int snapshot_one(json_t *owner, const char *key, size_t index, struct eng_error *err)
{
    json_t *value = key ? json_object_get(owner, key) : json_array_get(owner, index);
    struct eng_error ignored;
    struct policy *p = value ? policy_parse(value, &ignored) : NULL;
    if (!p) return 0;
    json_t *doc = policy_uses_saved(p) ? policy_to_json(p) : NULL;
    policy_free(p);
    if (!doc) return 0;
    int rc = key ? json_object_set_new(owner, key, doc) : json_array_set_new(owner, index, doc);
    return rc == 0 ? 0 : eng_no_memory(err);
}

/* Where a value of a search space sits in the policy grammar: a node, a list of nodes (seq,
 * choice, mix, views), or anything else (an op's name or argument, a weight). */
enum place { PLACE_NODE, PLACE_NODES, PLACE_OTHER };

/* The saved policies a search space names, each replaced by its document: a name where a node
 * may be ("my-policy", or {"preset": "my-policy"}), also as an option of a $search choice there.
 * Placeholders stay as they are; v is changed in place. */
static int snapshot_space(json_t *v, enum place place, struct eng_error *err)
{
    const json_t *spec = json_object_get(v, "$search");
    json_t *options = json_object_get(spec, "choice");
    if (spec) {
        for (size_t i = 0; json_is_array(options) && i < json_array_size(options); i++)
            if ((place == PLACE_NODE && snapshot_one(options, NULL, i, err) != 0) ||
                snapshot_space(json_array_get(options, i), place, err) != 0)
                return -1;
        return 0;
    }
    const char *key;
    json_t *child;
    json_object_foreach(v, key, child)
    {
        enum place inner = strcmp(key, "do") == 0 ? PLACE_NODE
                           : strcmp(key, "seq") == 0 || strcmp(key, "choice") == 0 ||
                                   strcmp(key, "mix") == 0 || strcmp(key, "views") == 0
                               ? PLACE_NODES
                               : PLACE_OTHER;
        if ((inner == PLACE_NODE && snapshot_one(v, key, 0, err) != 0) ||
            snapshot_space(json_object_get(v, key), inner, err) != 0)
            return -1;
    }
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++)
        if ((place == PLACE_NODES && snapshot_one(v, NULL, i, err) != 0) ||
            snapshot_space(json_array_get(v, i), place == PLACE_NODES ? PLACE_NODE : PLACE_OTHER,
                           err) != 0)
            return -1;
    return 0;
}

int saved_policies_snapshot(json_t *params, struct eng_error *err)
{
    if (snapshot_one(params, "policy", 0, err) != 0) return -1;
    /* A search space's root is a node; a named space ({"space": name, ...}) holds none. */
    if (snapshot_one(params, "space", 0, err) != 0 ||
        snapshot_space(json_object_get(params, "space"), PLACE_NODE, err) != 0)
        return -1;
    json_t *list = json_object_get(params, "policies");
    for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++)
        if (snapshot_one(list, NULL, i, err) != 0) return -1;
    return 0;
}
