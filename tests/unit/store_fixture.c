#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"

int store_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/augserve-store-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    struct eng_error err;
    f->st = storage_open(f->dir, &err);
    if (!f->st) {
        fprintf(stderr, "storage_open: %s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

int store_teardown(void **state)
{
    struct fixture *f = *state;
    storage_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}
