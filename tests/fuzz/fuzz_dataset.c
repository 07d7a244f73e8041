/* libFuzzer target: a dataset archive as an upload or a datasets_dir file brings it. The bytes are
 * written to a file and imported (data_import: libarchive's tar, gzip and zip readers, then the
 * names, links, layouts, manifests, CIFAR and idx records, the image decoders) under tight
 * limits; an import that succeeds is opened (dataset_open checks every record) and every image,
 * label, name and split read back. Either way nothing may be left in the scratch folder but the
 * dataset. */
#include <dirent.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"

static char scratch[64];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* Removes the scratch folder and all it holds. */
static void remove_scratch(void)
{
    nftw(scratch, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void read_everything(const char *dir)
{
    struct eng_error err;
    struct dataset *ds = dataset_open(dir, &err);
    if (!ds) abort(); /* an import the engine wrote must open */
    unsigned sum = 0;
    for (size_t i = 0; i < dataset_count(ds); i++) {
        struct img view;
        dataset_image(ds, i, &view);
        sum += view.data[(size_t)view.height * view.stride - 1];
        sum += (unsigned)dataset_label(ds, i) + (unsigned)strlen(dataset_source(ds, i));
        const char *targets = dataset_targets(ds, i);
        sum += targets ? (unsigned)strlen(targets) : 0;
    }
    for (size_t s = 0; s < dataset_split_count(ds); s++) {
        const struct data_split *split = dataset_split_at(ds, s);
        for (size_t k = 0; k < split->count; k++)
            sum += (unsigned)data_split_label(ds, split, k);
    }
    json_decref(dataset_describe(ds));
    dataset_close(ds);
    if (sum == 0xdeadbeefu) puts(""); /* keeps the reads */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "/tmp/fuzz-dataset-XXXXXX");
        if (!mkdtemp(scratch)) abort();
        atexit(remove_scratch);
    }
    char source[128], out[128];
    snprintf(source, sizeof source, "%s/source", scratch);
    snprintf(out, sizeof out, "%s/out", scratch);
    FILE *f = fopen(source, "wb");
    if (!f || (size && fwrite(data, size, 1, f) != 1) || fclose(f)) abort();
    mkdir(out, 0755);
    const struct data_import_options o = {.max_bytes = 1 << 20,
                                          .max_files = 64,
                                          .max_classes = 16,
                                          .max_file_bytes = 256 << 10,
                                          .max_cache_bytes = 1 << 20,
                                          .decode = {.max_pixels = 4096, .max_dimension = 256}};
    struct eng_error err;
    json_t *report = NULL;
    if (data_import(source, out, "d", &o, &report, &err) == 0) {
        json_decref(report);
        char dir[160];
        snprintf(dir, sizeof dir, "%s/d", out);
        read_everything(dir);
    }
    /* Only the dataset, when there is one: no temporary folder left. */
    DIR *d = opendir(out);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) abort();
    if (d) closedir(d);
    remove_scratch();
    if (mkdir(scratch, 0700) != 0) abort();
    return 0;
}
