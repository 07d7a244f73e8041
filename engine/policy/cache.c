/* The cache: parsed policies by their exact text, for a server that sees the same few policies
 * again and again. Entries hold a reference each, so a policy evicted while a request still
 * runs it lives until that request's policy_free.
 *
 * A text may name a saved policy, whose document can change or go (policy/saved.h). The cache
 * notes the table's generation: when it has moved, every entry goes, and a parse begun under an
 * older generation is returned but not kept. Saving is rare, so emptying the whole cache is
 * cheaper than knowing which entries read which saved policy. */
#include "policy/internal.h"
#include "policy/saved.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Texts longer than this are parsed every time, so the cache's memory stays bounded. */
#define CACHE_MAX_TEXT 4096

struct cache_entry {
    char *text;
    struct policy *policy;
    unsigned long last_use;
};

struct policy_cache {
    pthread_mutex_t lock;
    struct cache_entry *entries;
    size_t capacity;
    unsigned long clock;
    unsigned long generation; /* policy_saved_generation() the entries were parsed under */
};

struct policy_cache *policy_cache_new(size_t capacity)
{
    struct policy_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->entries = calloc(capacity ? capacity : 1, sizeof *c->entries);
    if (!c->entries) {
        free(c);
        return NULL;
    }
    c->capacity = capacity ? capacity : 1;
    c->generation = policy_saved_generation();
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

/* Drops every entry; under the lock, or when no other thread can see c. */
static void drop_entries(struct policy_cache *c)
{
    for (size_t i = 0; i < c->capacity; i++) {
        free(c->entries[i].text);
        policy_free(c->entries[i].policy);
        c->entries[i] = (struct cache_entry){0};
    }
}

/* Drops the entries when the saved policies changed since they were parsed; under the lock. */
static void check_generation(struct policy_cache *c, unsigned long now)
{
    if (c->generation == now) return;
    drop_entries(c);
    c->generation = now;
}

void policy_cache_free(struct policy_cache *c)
{
    if (!c) return;
    drop_entries(c);
    free(c->entries);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

struct policy *policy_cache_parse(struct policy_cache *c, const char *text, struct eng_error *err)
{
    int cacheable = strlen(text) <= CACHE_MAX_TEXT;
    unsigned long generation = policy_saved_generation();
    if (cacheable) {
        pthread_mutex_lock(&c->lock);
        check_generation(c, generation);
        for (size_t i = 0; i < c->capacity; i++) {
            struct cache_entry *e = &c->entries[i];
            if (e->text && strcmp(e->text, text) == 0) {
                e->last_use = ++c->clock;
                atomic_fetch_add(&e->policy->refs, 1);
                pthread_mutex_unlock(&c->lock);
                return e->policy;
            }
        }
        pthread_mutex_unlock(&c->lock);
    }
    /* Parsed outside the lock: two threads may parse the same text, and one copy is kept. */
    struct policy *p = policy_parse_text(text, err);
    char *copy = p && cacheable ? strdup(text) : NULL;
    if (!copy) return p;
    pthread_mutex_lock(&c->lock);
    /* The table changed while this text was parsed: the parse may have read the old document. */
    if (policy_saved_generation() != generation) {
        pthread_mutex_unlock(&c->lock);
        free(copy);
        return p;
    }
    check_generation(c, generation);
    struct cache_entry *victim = &c->entries[0];
    for (size_t i = 0; i < c->capacity; i++)
        if (!c->entries[i].text || c->entries[i].last_use < victim->last_use)
            victim = &c->entries[i];
    free(victim->text);
    policy_free(victim->policy);
    victim->text = copy;
    victim->policy = p;
    victim->last_use = ++c->clock;
    atomic_fetch_add(&p->refs, 1);
    pthread_mutex_unlock(&c->lock);
    return p;
}
