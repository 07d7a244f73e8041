/* Small helpers the data area's files share (internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/internal.h"

char *data_printf(struct eng_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0) {
        eng_no_memory(err);
        return NULL;
    }
    return out;
}

int data_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int data_utf8_valid(const char *name, size_t size)
{
    const unsigned char *s = (const unsigned char *)name;
    for (size_t i = 0; i < size;) {
        unsigned c = s[i];
        size_t extra = c < 0x80             ? 0
                       : (c & 0xe0) == 0xc0 ? 1
                       : (c & 0xf0) == 0xe0 ? 2
                       : (c & 0xf8) == 0xf0 ? 3
                                            : 4;
        if (c == 0 || extra == 4 || i + extra >= size) return 0;
        unsigned long cp = extra == 0 ? c : c & (0x3fu >> extra);
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
        static const unsigned long least[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < least[extra] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0;
        i += extra + 1;
    }
    return 1;
}

void data_remove_tree(const char *dir)
{
    char *paths[] = {(char *)dir, NULL};
    FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
    if (!fts) return;
    for (FTSENT *e; (e = fts_read(fts));) {
        if (e->fts_info == FTS_DP)
            rmdir(e->fts_accpath);
        else if (e->fts_info != FTS_D)
            unlink(e->fts_accpath);
    }
    fts_close(fts);
}

int data_sync_folder(const char *dir, struct eng_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc =
        fd >= 0 && fsync(fd) == 0 ? 0 : eng_fail(err, ENG_INTERNAL, "%s: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
}

int data_name_check(const char *what, const char *name, struct eng_error *err)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.' ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != n)
        return eng_fail(err, ENG_INVALID,
                        "%s '%.64s': use 1 to 64 letters, digits, '_', '-' or '.', not starting "
                        "with '.'",
                        what, name);
    return 0;
}

void *data_grow(void *items, size_t *cap, size_t count, size_t size, struct eng_error *err)
{
    if (count < *cap) return items;
    const size_t more = *cap ? 2 * *cap : 64;
    void *grown = realloc(items, more * size);
    if (!grown) {
        eng_no_memory(err);
        return NULL;
    }
    *cap = more;
    return grown;
}
