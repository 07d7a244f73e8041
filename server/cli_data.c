/* `augserve dataset import|show`: a dataset imported into a cache folder (engine/data), as the
 * server's import jobs do, and an imported one described. `augserve bench loader` is in
 * cli_bench.c with the other benchmarks. */
#include "cli.h"
#include "cli_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"

static void dataset_usage(FILE *out)
{
    fprintf(
        out,
        "usage: augserve dataset import PATH --out DIR [--name NAME] [--image-size N]\n"
        "                                [--threads T]\n"
        "Imports the dataset at PATH (a folder, or a tar, tar.gz or zip of class folders,\n"
        "CIFAR batches, MNIST idx files or a JSON Lines manifest) into DIR/<id>, <id> being\n"
        "the first 16 hex digits of its content hash; DIR is made if missing. Images of\n"
        "mixed sizes get their shorter side resized to N (default 256). Prints the import\n"
        "report, with \"path\" the dataset's folder.\n"
        "usage: augserve dataset show DIR\n"
        "Prints the dataset in DIR: classes, splits with their counts per class, the report.\n");
}

/* The importing thread's progress on stderr, when it is a terminal. */
static void show_progress(void *ctx, double fraction, const char *phase)
{
    (void)ctx;
    fprintf(stderr, "\r%-9s %5.1f%%", phase, 100 * fraction);
    fflush(stderr);
}

static int dataset_import(int argc, char **argv)
{
    const char *out = NULL, *name = NULL;
    int image_size = 0, threads = 1;
    const struct cli_flag flags[] = {{"--out", FLAG_TEXT, &out},
                                     {"--name", FLAG_TEXT, &name},
                                     {"--image-size", FLAG_INT, &image_size},
                                     {"--threads", FLAG_INT, &threads}};
    if (argc < 2 || cli_parse_flags(argc - 2, argv + 2, flags, FLAG_COUNT(flags)) != 0 || !out ||
        image_size < 0 || image_size > 65535 || threads < 1 || threads > 256)
        return dataset_usage(stderr), 2;
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        return fprintf(stderr, "augserve: %s: %s\n", out, strerror(errno)), 1;
    const int tty = isatty(STDERR_FILENO);
    struct data_import_options o = {.name = name,
                                    .image_size = image_size,
                                    .decode = cli_image_options,
                                    .threads = threads,
                                    .progress = tty ? show_progress : NULL};
    struct eng_error err = {0};
    json_t *report = NULL;
    int rc = img_codec_init(&err) ? -1 : data_import(argv[1], out, NULL, &o, &report, &err);
    if (tty) fprintf(stderr, "\n");
    if (rc) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    char *path = NULL;
    if (asprintf(&path, "%s/%s", out, json_string_value(json_object_get(report, "id"))) < 0)
        path = NULL;
    json_object_set_new(report, "path", path ? json_string(path) : json_null());
    free(path);
    cli_print_line(report);
    return 0;
}

static int dataset_show(int argc, char **argv)
{
    if (argc != 2) return dataset_usage(stderr), 2;
    struct eng_error err = {0};
    struct dataset *ds = dataset_open(argv[1], &err);
    if (!ds) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    json_t *doc = dataset_describe(ds);
    dataset_close(ds);
    if (!doc) return fprintf(stderr, "augserve: out of memory\n"), 1;
    cli_print_line(doc);
    return 0;
}

int cli_dataset(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "import") == 0) return dataset_import(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "show") == 0) return dataset_show(argc, argv);
    dataset_usage(stderr);
    return 2;
}
