/* The loader as the benchmarks run it (cli_internal.h): an imported dataset's split, a policy and
 * a data loader that starts the next epoch when one is spent, so a timed loop never runs dry. */
#include "cli_internal.h"

#include <stdio.h>

int cli_feed_open(struct cli_feed *f, const char *dir, const char *split_name,
                  const char *policy_text)
{
    struct eng_error err = {0};
    *f = (struct cli_feed){0};
    if (!(f->dataset = dataset_open(dir, &err)))
        return fprintf(stderr, "augserve: %s\n", err.message), 1;
    const struct data_split *split = dataset_split(f->dataset, split_name ? split_name : "train");
    if (!split && !split_name) split = dataset_split_at(f->dataset, 0);
    if (!split) return fprintf(stderr, "augserve: %s: no split '%s'\n", dir, split_name), 1;
    if (!(f->policy = cli_parse_policy(policy_text))) return 2;
    f->options.dataset = f->dataset;
    f->options.split = split;
    f->options.policy = f->policy;
    f->options.seed = 1;
    f->options.shuffle = 1;
    return 0;
}

int cli_feed_next(struct cli_feed *f, struct data_batch *b)
{
    struct eng_error err = {0};
    for (int tries = 0; tries < 2; tries++) {
        if (!f->loader && !(f->loader = data_loader_new(&f->options, &err))) break;
        int got = data_loader_next(f->loader, b, &err);
        if (got == 1) return 0;
        data_loader_free(f->loader);
        f->loader = NULL;
        f->options.epoch++;
        if (got < 0) break;
    }
    fprintf(stderr, "augserve: %s\n",
            err.code               ? err.message
            : f->options.drop_last ? "the split holds fewer samples than a batch"
                                   : "the split is empty");
    return -1;
}

void cli_feed_close(struct cli_feed *f)
{
    data_loader_free(f->loader);
    policy_free(f->policy);
    dataset_close(f->dataset);
    *f = (struct cli_feed){0};
}
