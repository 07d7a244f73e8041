/* The table of job kinds. A new kind is a file with its descriptor (job_kind.h) and one line
 * here. */
#include <stdio.h>
#include <string.h>

#include "job_kind.h"

extern const struct job_kind job_kind_count, job_kind_evaluate, job_kind_affinity,
    job_kind_pseudo_label, job_kind_dataset_import, job_kind_train, job_kind_diversity,
    job_kind_affinity_diversity, job_kind_search, job_kind_search_trial, job_kind_objective_trial,
    job_kind_fixmatch, job_kind_supervised, job_kind_self_training;

static const struct job_kind *const kinds[] = {
    &job_kind_evaluate,      &job_kind_affinity,        &job_kind_pseudo_label,
    &job_kind_train,         &job_kind_diversity,       &job_kind_affinity_diversity,
    &job_kind_search,        &job_kind_fixmatch,        &job_kind_supervised,
    &job_kind_self_training, &job_kind_count,           &job_kind_dataset_import,
    &job_kind_search_trial,  &job_kind_objective_trial,
};

#define KIND_COUNT (sizeof kinds / sizeof kinds[0])

static int in_force(const struct job_kind *kind, int debug)
{
    return debug || !(kind->flags & JOB_KIND_DEBUG);
}

const struct job_kind *job_kind_find(const char *name, int debug)
{
    for (size_t i = 0; name && i < KIND_COUNT; i++)
        if (in_force(kinds[i], debug) && strcmp(kinds[i]->name, name) == 0) return kinds[i];
    return NULL;
}

const struct job_kind *job_kind_at(size_t index, int debug)
{
    for (size_t i = 0; i < KIND_COUNT; i++)
        if (in_force(kinds[i], debug) && !(kinds[i]->flags & JOB_KIND_INTERNAL) && index-- == 0)
            return kinds[i];
    return NULL;
}

const char *job_kind_names(int debug, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    const struct job_kind *kind;
    for (size_t i = 0; (kind = job_kind_at(i, debug)) && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", used ? ", " : "", kind->name);
    if (!used) snprintf(out, size, "none");
    return out;
}
