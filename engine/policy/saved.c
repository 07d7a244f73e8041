/* The table of saved policies (policy/saved.h): a JSON object of name -> compiled document under
 * one lock. Documents are never modified once stored, so readers share them by reference
 * (jansson's reference counts are atomic). */
#include "policy/saved.h"

#include <pthread.h>
#include <stdatomic.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *table; /* NULL until the first set */
static atomic_ulong generation;

int policy_saved_set(const char *name, const json_t *doc, struct eng_error *err)
{
    json_t *copy = json_deep_copy(doc);
    if (!copy) return eng_no_memory(err);
    pthread_mutex_lock(&lock);
    if (!table) table = json_object();
    int rc = table ? json_object_set_new(table, name, copy) : (json_decref(copy), -1);
    atomic_fetch_add(&generation, 1);
    pthread_mutex_unlock(&lock);
    return rc == 0 ? 0 : eng_no_memory(err);
}

int policy_saved_remove(const char *name)
{
    pthread_mutex_lock(&lock);
    int removed = table && json_object_del(table, name) == 0;
    if (removed) atomic_fetch_add(&generation, 1);
    pthread_mutex_unlock(&lock);
    return removed;
}

int policy_saved_replace(const json_t *all, struct eng_error *err)
{
    json_t *copy = json_deep_copy(all);
    if (!copy) return eng_no_memory(err);
    pthread_mutex_lock(&lock);
    json_t *old = table;
    table = copy;
    atomic_fetch_add(&generation, 1);
    pthread_mutex_unlock(&lock);
    json_decref(old);
    return 0;
}

json_t *policy_saved_get(const char *name)
{
    pthread_mutex_lock(&lock);
    json_t *doc = table ? json_incref(json_object_get(table, name)) : NULL;
    pthread_mutex_unlock(&lock);
    return doc;
}

void policy_saved_clear(void)
{
    pthread_mutex_lock(&lock);
    json_decref(table);
    table = NULL;
    atomic_fetch_add(&generation, 1);
    pthread_mutex_unlock(&lock);
}

unsigned long policy_saved_generation(void)
{
    return atomic_load(&generation);
}
