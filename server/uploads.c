/* Partial uploads and their owners (uploads.h). */
#include "uploads.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "leases.h"
#include "log.h"
#include "process_store.h"
#include "storage.h"

#define PARTIAL ".partial-"
#define SUFFIX  "-XXXXXX" /* mkostemp's, after the owner */

int uploads_create(const char *data_dir, char **path)
{
    if (asprintf(path, "%s/uploads/" PARTIAL "%s" SUFFIX, data_dir, leases_worker_id()) < 0) {
        *path = NULL;
        errno = ENOMEM;
        return -1;
    }
    int fd = mkostemp(*path, O_CLOEXEC);
    if (fd < 0) {
        int saved = errno;
        free(*path);
        *path = NULL;
        errno = saved;
    }
    return fd;
}

int uploads_is_partial(const char *name)
{
    return strncmp(name, PARTIAL, strlen(PARTIAL)) == 0;
}

/* Whether the process named in a partial upload's name may still be receiving it. A name without
 * an owner (a build before owners) has none left. */
static int owner_live(struct app *app, const char *name)
{
    char owner[NAME_MAX + 1] = "";
    size_t n = strlen(name + strlen(PARTIAL));
    if (n > strlen(SUFFIX) && n - strlen(SUFFIX) < sizeof owner)
        snprintf(owner, sizeof owner, "%.*s", (int)(n - strlen(SUFFIX)), name + strlen(PARTIAL));
    if (strcmp(owner, leases_worker_id()) == 0) return 1;
    if (!owner[0] || storage_is_local(app->storage) || leases_owner_gone(owner, NULL)) return 0;
    struct eng_error err;
    int live = process_store_live(app->storage, owner, (int64_t)app->cfg->lease_s * 1000, &err);
    if (live < 0)
        log_event("warn", "datasets", "cannot tell whether %s still receives %s: %s", owner, name,
                  err.message);
    return live != 0;
}

void uploads_sweep(struct app *app)
{
    char dir_path[PATH_MAX];
    snprintf(dir_path, sizeof dir_path, "%s/uploads", app->cfg->data_dir);
    DIR *dir = opendir(dir_path);
    if (!dir) {
        if (errno != ENOENT)
            log_event("warn", "datasets", "cannot read %s: %s", dir_path, strerror(errno));
        return;
    }
    for (struct dirent *d; (d = readdir(dir));) {
        if (!uploads_is_partial(d->d_name) || owner_live(app, d->d_name)) continue;
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir_path, d->d_name);
        if (unlink(path) == 0)
            log_event("info", "datasets", "removed %s, a partial upload whose server is gone",
                      path);
        else if (errno != ENOENT) /* another process's sweep may have been first */
            log_event("warn", "datasets", "cannot remove %s: %s", path, strerror(errno));
    }
    closedir(dir);
}
