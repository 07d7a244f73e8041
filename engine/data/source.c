/* What an import reads: a folder, or an archive through libarchive (tar with or without gzip, and
 * zip). Nothing is ever extracted: files are read into memory by the caller, in bounded pieces.
 * Every name is checked as it is met and every pass counts files and bytes against the limits, so
 * a hostile archive (zip-slip names, links, a bomb, a million empty files) is refused with its
 * path before it costs more than its own headers. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cancel.h"
#include "data/internal.h"

#define READ_BLOCK (1u << 16)
#define POLL_BYTES (8u << 20) /* read between two cancellation polls */

struct source {
    char *path;
    struct data_import_options limits;
    int folder;
    uint64_t archive_size; /* archives: the file's size, for the ratio */
    const char *kind;
    /* A folder: its regular files, sorted, found once at open. */
    int root;
    char **files;
    size_t file_count, cursor;
    int fd; /* the current file, opened at its first read; -1 */
    /* An archive: reopened at each pass. */
    struct archive *a;
    /* The current file and the pass's counts. */
    const char *name; /* namebuf, or a folder's files[i] */
    char namebuf[SOURCE_NAME_MAX + 1];
    int64_t declared;
    uint64_t entry_read, files_seen, bytes, unpolled;
    int inner; /* a source_stream reads the file: it counts its own output instead */
};

int source_normalise(const char *raw, char *out, struct eng_error *err)
{
    size_t len = strlen(raw);
    if (len > SOURCE_NAME_MAX)
        return eng_fail(err, ENG_INVALID, "%.64s...: a name longer than %d bytes", raw,
                        SOURCE_NAME_MAX);
    if (!data_utf8_valid(raw, len))
        return eng_fail(err, ENG_INVALID, "%s: a name that is not UTF-8", raw);
    if (raw[0] == '/' || strchr(raw, '\\') || (len >= 2 && raw[1] == ':'))
        return eng_fail(err, ENG_INVALID, "%s: an absolute name (or a backslash in it)", raw);
    size_t used = 0;
    for (const char *part = raw; *part;) {
        size_t n = strcspn(part, "/");
        if (n == 2 && part[0] == '.' && part[1] == '.')
            return eng_fail(err, ENG_INVALID, "%s: a name that climbs out with '..'", raw);
        if (n > 0 && !(n == 1 && part[0] == '.')) {
            if (used) out[used++] = '/';
            memcpy(out + used, part, n);
            used += n;
        }
        part += n + (part[n] == '/');
    }
    out[used] = '\0';
    return 0;
}

int source_ignored(const char *path)
{
    for (const char *part = path; *part; part += strcspn(part, "/"), part += *part == '/')
        if (part[0] == '.' || strncmp(part, "__MACOSX", 8) == 0) return 1;
    return 0;
}

/* Counts n more bytes of the pass against max_bytes and the ratio; polls now and then. */
static int count_bytes(struct source *s, uint64_t n, struct eng_error *err)
{
    s->bytes += n;
    if (s->bytes > s->limits.max_bytes)
        return eng_fail(err, ENG_TOO_LARGE,
                        "%s: %s: the files come to more than %llu bytes (max_bytes)", s->path,
                        s->name, (unsigned long long)s->limits.max_bytes);
    if (!s->folder && s->bytes > DATA_RATIO_FLOOR &&
        (double)s->bytes > s->limits.max_ratio * (double)s->archive_size)
        return eng_fail(err, ENG_TOO_LARGE,
                        "%s: %s: the archive expands past %g times its size (max_ratio)", s->path,
                        s->name, s->limits.max_ratio);
    s->unpolled += n;
    if (s->unpolled < POLL_BYTES) return 0;
    s->unpolled = 0;
    return eng_cancel_poll(err);
}

/* A new file of the pass: counted, and its declared size too. */
static int count_file(struct source *s, int64_t size, struct eng_error *err)
{
    s->declared = size;
    s->entry_read = 0;
    if (++s->files_seen > s->limits.max_files)
        return eng_fail(err, ENG_TOO_LARGE, "%s: more than %llu files (max_files)", s->path,
                        (unsigned long long)s->limits.max_files);
    if (eng_cancel_poll(err)) return -1;
    return size > 0 ? count_bytes(s, (uint64_t)size, err) : 0;
}

/* ---- Folders -------------------------------------------------------------------------------- */

static int folder_list(struct source *s, struct eng_error *err)
{
    char *paths[] = {s->path, NULL};
    FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
    if (!fts) return eng_fail(err, ENG_INTERNAL, "%s: %s", s->path, strerror(errno));
    size_t cap = 0, root_len = strlen(s->path);
    char normal[SOURCE_NAME_MAX + 1];
    int rc = 0;
    for (FTSENT *e; rc == 0 && (e = fts_read(fts));) {
        const char *rel = e->fts_path + root_len + (e->fts_path[root_len] == '/');
        if (e->fts_level == 0 || e->fts_info == FTS_DP) continue;
        if (source_ignored(e->fts_name)) {
            if (e->fts_info == FTS_D) fts_set(fts, e, FTS_SKIP); /* never walked, never counted */
            continue;
        }
        if (source_normalise(rel, normal, err)) {
            rc = -1;
        } else if (e->fts_info == FTS_SL || e->fts_info == FTS_SLNONE) {
            rc = eng_fail(err, ENG_INVALID, "%s: a symbolic link", normal);
        } else if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR || e->fts_info == FTS_NS) {
            rc = eng_fail(err, ENG_INTERNAL, "%s: %s", normal, strerror(e->fts_errno));
        } else if (e->fts_info == FTS_F) {
            if (s->file_count == s->limits.max_files) {
                rc = eng_fail(err, ENG_TOO_LARGE, "%s: more than %llu files (max_files)", s->path,
                              (unsigned long long)s->limits.max_files);
            } else {
                char **grown = data_grow(s->files, &cap, s->file_count, sizeof *grown, err);
                if (grown) s->files = grown;
                rc = grown ? 0 : -1;
            }
            if (rc == 0 && !(s->files[s->file_count] = strdup(normal))) rc = eng_no_memory(err);
            if (rc == 0) s->file_count++;
        } else if (e->fts_info != FTS_D) {
            rc = eng_fail(err, ENG_UNSUPPORTED, "%s: a device, FIFO or socket", normal);
        }
    }
    fts_close(fts);
    if (rc == 0 && s->file_count > 1)
        qsort(s->files, s->file_count, sizeof *s->files, data_compare_names);
    return rc;
}

static int folder_next(struct source *s, struct source_entry *e, struct eng_error *err)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (s->cursor == s->file_count) return 0;
    s->name = s->files[s->cursor++];
    struct stat st;
    if (fstatat(s->root, s->name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return eng_fail(err, ENG_INTERNAL, "%s: %s", s->name, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return eng_fail(err, ENG_INVALID, "%s: no longer a regular file", s->name);
    e->name = s->name;
    e->size = (int64_t)st.st_size;
    return count_file(s, e->size, err) ? -1 : 1;
}

static int folder_read(struct source *s, void *buf, size_t n, size_t *got, struct eng_error *err)
{
    if (s->fd < 0 && (s->fd = openat(s->root, s->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return eng_fail(err, ENG_INTERNAL, "%s: %s", s->name, strerror(errno));
    ssize_t r;
    while ((r = read(s->fd, buf, n)) < 0 && errno == EINTR)
        ;
    if (r < 0) return eng_fail(err, ENG_INTERNAL, "%s: %s", s->name, strerror(errno));
    *got = (size_t)r;
    return 0;
}

/* ---- Archives ------------------------------------------------------------------------------- */

static int archive_fail(struct source *s, enum eng_code code, const char *doing,
                        struct eng_error *err)
{
    const char *why = archive_error_string(s->a);
    return eng_fail(err, code, "%s: %s%s%s", s->path, doing, why ? ": " : "", why ? why : "");
}

static int archive_rewind(struct source *s, struct eng_error *err)
{
    if (s->a) archive_read_free(s->a);
    if (!(s->a = archive_read_new())) return eng_no_memory(err);
    archive_read_support_format_tar(s->a);
    archive_read_support_format_zip(s->a);
    archive_read_support_filter_gzip(s->a);
    /* source_open made sure the file can be read: a failure here is its format. */
    if (archive_read_open_filename(s->a, s->path, READ_BLOCK) != ARCHIVE_OK)
        return archive_fail(s, ENG_UNSUPPORTED, "not a tar, tar.gz or zip archive", err);
    return 0;
}

/* The entry's kind: 1 a regular file, 0 a folder, -1 refused (err names it). */
static int archive_entry_check(struct source *s, struct archive_entry *entry, struct eng_error *err)
{
    if (archive_entry_hardlink(entry))
        return eng_fail(err, ENG_INVALID, "%s: %s: a hard link", s->path, s->name);
    switch (archive_entry_filetype(entry)) {
    case AE_IFREG:
        break;
    case AE_IFDIR:
        return 0;
    case AE_IFLNK:
        return eng_fail(err, ENG_INVALID, "%s: %s: a symbolic link", s->path, s->name);
    default:
        return eng_fail(err, ENG_UNSUPPORTED, "%s: %s: a device, FIFO or socket", s->path, s->name);
    }
    if (archive_entry_is_encrypted(entry))
        return eng_fail(err, ENG_UNSUPPORTED, "%s: %s: encrypted", s->path, s->name);
    if (!*s->name) return eng_fail(err, ENG_INVALID, "%s: a file with no name", s->path);
    return 1;
}

static int archive_next(struct source *s, struct source_entry *e, struct eng_error *err)
{
    for (;;) {
        struct archive_entry *entry;
        int r = archive_read_next_header(s->a, &entry);
        if (r == ARCHIVE_EOF) return 0;
        if (r < ARCHIVE_WARN)
            return archive_fail(s, s->kind ? ENG_UNDECODABLE : ENG_UNSUPPORTED,
                                s->kind ? "a damaged entry" : "not a tar, tar.gz or zip archive",
                                err);
        if (!s->kind) {
            int zip = (archive_format(s->a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_ZIP;
            int gz = archive_filter_code(s->a, 0) == ARCHIVE_FILTER_GZIP;
            s->kind = zip ? "zip" : gz ? "tar.gz" : "tar";
        }
        const char *raw = archive_entry_pathname_utf8(entry);
        if (!raw) raw = archive_entry_pathname(entry);
        if (!raw) return eng_fail(err, ENG_INVALID, "%s: an entry with no readable name", s->path);
        s->name = s->namebuf;
        if (source_normalise(raw, s->namebuf, err)) {
            char why[sizeof err->message];
            snprintf(why, sizeof why, "%s", err->message);
            return eng_fail(err, err->code, "%s: %s", s->path, why);
        }
        int kind = archive_entry_check(s, entry, err);
        if (kind < 0) return -1;
        if (kind == 0) continue;
        e->name = s->name;
        e->size = archive_entry_size_is_set(entry) ? (int64_t)archive_entry_size(entry) : -1;
        return count_file(s, e->size, err) ? -1 : 1;
    }
}

/* ---- The interface -------------------------------------------------------------------------- */

struct source *source_open(const char *path, const struct data_import_options *limits,
                           struct eng_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        eng_fail(err, errno == ENOENT ? ENG_NOT_FOUND : ENG_INTERNAL, "%s: %s", path,
                 strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        eng_fail(err, ENG_UNSUPPORTED, "%s: neither a folder nor an archive file", path);
        return NULL;
    }
    if (access(path, R_OK) != 0) {
        eng_fail(err, ENG_INTERNAL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct source *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        eng_no_memory(err);
        return NULL;
    }
    s->name = s->namebuf;
    s->limits = *limits;
    s->folder = S_ISDIR(st.st_mode);
    s->archive_size = (uint64_t)st.st_size;
    s->root = s->fd = -1;
    if (s->folder) {
        s->kind = "folder";
        s->root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->root < 0) eng_fail(err, ENG_INTERNAL, "%s: %s", path, strerror(errno));
        if (s->root < 0 || folder_list(s, err) != 0) {
            source_close(s);
            return NULL;
        }
    }
    return s;
}

void source_close(struct source *s)
{
    if (!s) return;
    if (s->a) archive_read_free(s->a);
    if (s->fd >= 0) close(s->fd);
    if (s->root >= 0) close(s->root);
    for (size_t i = 0; i < s->file_count; i++)
        free(s->files[i]);
    free(s->files);
    free(s->path);
    free(s);
}

const char *source_kind(const struct source *s)
{
    return s->kind ? s->kind : "archive";
}

double source_position(struct source *s)
{
    if (s->folder) return s->file_count ? (double)s->cursor / (double)s->file_count : 1;
    const double read = s->a ? (double)archive_filter_bytes(s->a, -1) : 0;
    return s->archive_size && read < (double)s->archive_size ? read / (double)s->archive_size : 1;
}

int source_rewind(struct source *s, struct eng_error *err)
{
    s->files_seen = s->bytes = s->unpolled = 0;
    s->cursor = 0;
    return s->folder ? 0 : archive_rewind(s, err);
}

int source_next(struct source *s, struct source_entry *e, struct eng_error *err)
{
    return s->folder ? folder_next(s, e, err) : archive_next(s, e, err);
}

int source_read(struct source *s, void *buf, size_t n, size_t *got, struct eng_error *err)
{
    if (s->folder) {
        if (folder_read(s, buf, n, got, err)) return -1;
    } else {
        la_ssize_t r = archive_read_data(s->a, buf, n);
        if (r < 0) return archive_fail(s, ENG_UNDECODABLE, s->name, err);
        *got = (size_t)r;
    }
    s->entry_read += *got;
    if (s->declared >= 0 && s->entry_read > (uint64_t)s->declared)
        return eng_fail(err, ENG_INVALID, "%s: %s: longer than its header says", s->path, s->name);
    return s->declared < 0 && !s->inner ? count_bytes(s, *got, err) : 0;
}

int source_read_all(struct source *s, uint64_t cap, void **data, size_t *size,
                    struct eng_error *err)
{
    *data = NULL;
    if (s->declared >= 0 && (uint64_t)s->declared > cap) return 1;
    size_t capacity = s->declared >= 0 ? (size_t)s->declared + 1 : READ_BLOCK, used = 0;
    unsigned char *buf = malloc(capacity);
    for (size_t got = 1; buf && got > 0;) {
        if (used + 1 == capacity) {
            unsigned char *grown = realloc(buf, capacity *= 2);
            if (!grown) break;
            buf = grown;
        }
        if (source_read(s, buf + used, capacity - 1 - used, &got, err)) {
            free(buf);
            return -1;
        }
        used += got;
        if (used > cap) {
            free(buf);
            return 1;
        }
    }
    if (!buf || used + 1 > capacity) {
        free(buf);
        return eng_no_memory(err);
    }
    buf[used] = 0;
    *data = buf;
    *size = used;
    return 0;
}

/* ---- Gunzipped streams ---------------------------------------------------------------------- */

struct source_stream {
    struct source *s;
    struct archive *a;
    struct eng_error *err; /* where the read callback's error goes */
    int failed, ended;
    uint64_t out; /* bytes given */
    unsigned char buf[READ_BLOCK];
};

static la_ssize_t stream_pull(struct archive *a, void *ctx, const void **block)
{
    struct source_stream *z = ctx;
    size_t got = 0;
    if (source_read(z->s, z->buf, sizeof z->buf, &got, z->err)) {
        z->failed = 1;
        archive_set_error(a, EIO, "%s", z->err->message);
        return -1;
    }
    *block = z->buf;
    return (la_ssize_t)got;
}

struct source_stream *source_stream_open(struct source *s, struct eng_error *err)
{
    struct source_stream *z = calloc(1, sizeof *z);
    if (!z || !(z->a = archive_read_new())) {
        free(z);
        eng_no_memory(err);
        return NULL;
    }
    z->s = s;
    z->err = err;
    s->inner = 1;
    archive_read_support_format_raw(z->a);
    archive_read_support_filter_gzip(z->a);
    struct archive_entry *entry;
    int r = archive_read_open2(z->a, z, NULL, stream_pull, NULL, NULL);
    if (r == ARCHIVE_OK) r = archive_read_next_header(z->a, &entry);
    if (r == ARCHIVE_EOF)
        z->ended = 1; /* an empty file */
    else if (r < ARCHIVE_WARN) {
        if (!z->failed) eng_fail(err, ENG_INVALID, "%s: %s", s->name, archive_error_string(z->a));
        source_stream_close(z);
        return NULL;
    }
    return z;
}

int source_stream_read(struct source_stream *z, void *buf, size_t n, size_t *got,
                       struct eng_error *err)
{
    z->err = err;
    *got = 0;
    while (*got < n && !z->ended) {
        la_ssize_t r = archive_read_data(z->a, (unsigned char *)buf + *got, n - *got);
        if (r < 0) {
            if (!z->failed)
                eng_fail(err, ENG_INVALID, "%s: %s", z->s->name, archive_error_string(z->a));
            return -1;
        }
        if (r == 0) z->ended = 1;
        *got += (size_t)r;
        /* The file's declared bytes were counted when it was met; the rest is expansion. */
        uint64_t declared = z->s->declared > 0 ? (uint64_t)z->s->declared : 0;
        uint64_t before = z->out > declared ? z->out - declared : 0;
        z->out += (uint64_t)r;
        uint64_t after = z->out > declared ? z->out - declared : 0;
        if (count_bytes(z->s, after - before, err)) return -1;
    }
    return *got < n;
}

void source_stream_close(struct source_stream *z)
{
    if (!z) return;
    z->s->inner = 0;
    archive_read_free(z->a);
    free(z);
}
