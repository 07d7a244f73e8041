/* What the command-line tools share, defined in cli.c: reading inputs, parsing the policy and
 * the "--name value" flags, printing a JSON line, the clock, opening a perceptual model; and in
 * cli_feed.c, the benchmarks' data loader. Private to server/cli*.c: the CMakeLists defines
 * AUGSERVE_CLI_INTERNAL for those files only. */
#ifndef AUGSERVE_CLI_INTERNAL_H
#define AUGSERVE_CLI_INTERNAL_H

#ifndef AUGSERVE_CLI_INTERNAL
#error "cli_internal.h is private to the command-line tools (server/cli*.c)"
#endif

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "audio/audio.h"
#include "core/error.h"
#include "data/loader.h"
#include "image/codec.h"
#include "models.h"
#include "policy/policy.h"

/* The CLI takes no limit from a server config: a day of audio; images of any pixel count, up to
 * 65535 a side, their colours as stored. */
#define CLI_MAX_AUDIO_SECONDS 86400.0
extern const struct img_decode_options cli_image_options;

/* The bytes of the file at path (malloc'd): 0, or -1 with err naming the path and the reason. */
int cli_read_file(const char *path, void **data, size_t *size, struct eng_error *err);

/* The file at path decoded as an image as opt says (NULL: the defaults); info may be NULL (else
 * the caller clears it: img_info_clear). NULL with err naming the path. */
struct img *cli_load_image(const char *path, const struct img_decode_options *opt,
                           struct img_info *info, struct eng_error *err);

/* The file at path decoded to rate Hz; NULL with err naming the path. */
struct audio *cli_load_clip(const char *path, int rate, struct eng_error *err);

/* The policy text (JSON or a preset name) parsed; NULL after saying why. */
struct policy *cli_parse_policy(const char *text);

/* Prints a result as one compact JSON line (reals to 6 digits) and frees it. */
void cli_print_line(json_t *line);

/* A "--name value" flag of the bench and eval commands, and where its value goes. */
struct cli_flag {
    const char *name;
    enum { FLAG_TEXT, FLAG_INT, FLAG_REAL } kind;
    void *value; /* const char **, int * or double * */
};
#define FLAG_COUNT(flags) (sizeof(flags) / sizeof(flags)[0])

/* Reads flag-value pairs, each flag one of flags[0..n): 0, or -1 for another flag, a flag
 * without a value or a number that is not one (the caller prints its usage). The caller checks
 * the ranges. */
int cli_parse_flags(int argc, char **argv, const struct cli_flag *flags, size_t n);

/* A monotonic clock in seconds, for the benchmarks. */
double cli_now(void);

/* The benchmarks' loader: a split of an imported dataset under a policy, epoch after epoch. */
struct cli_feed {
    struct dataset *dataset;
    struct policy *policy;
    /* dataset, split, policy, seed 1 and shuffle set by cli_feed_open; the caller sets the
     * preprocessing, batch and threads before the first cli_feed_next */
    struct data_loader_options options;
    struct data_loader *loader;
};

/* Opens dir's split (NULL: "train", else the first) and parses the policy: 0, or 1 (2 for a bad
 * policy) after saying why; cli_feed_close frees what was opened either way. */
int cli_feed_open(struct cli_feed *f, const char *dir, const char *split, const char *policy);
/* The next batch, starting the next epoch when one is spent: 0, or -1 after saying why. */
int cli_feed_next(struct cli_feed *f, struct data_batch *b);
void cli_feed_close(struct cli_feed *f);

/* augserve bench train (cli_bench_train.c), which cli_bench dispatches to, and its usage. */
int cli_bench_train(int argc, char **argv);
void cli_bench_train_usage(FILE *out);

/* The model of folder path (its parent is opened as the repository) with a perceptual config: a
 * reference, or NULL after saying why. *repo must be closed after the release. */
struct model *cli_open_perceptual(const char *path, int threads, struct models **repo);

#endif
