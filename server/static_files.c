/* The web UI's files. Only regular files that resolve inside static_root are served: paths with
 * "." or ".." segments, empty segments or backslashes are refused before touching the disk, and
 * the resolved path must stay under the root, so symlinks cannot lead out of it. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "handlers.h"
#include "request.h"
#include "response.h"

static const struct {
    const char *extension;
    const char *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".jsonl", "application/jsonl"},
    {".csv", "text/csv; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".webp", "image/webp"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
    {".wasm", "application/wasm"},
};

const char *static_content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++)
            if (strcasecmp(dot, content_types[i].extension) == 0) return content_types[i].type;
    return "application/octet-stream";
}

/* Whether every segment of path (which starts with '/') is a plain name. */
static int path_is_plain(const char *path)
{
    if (strchr(path, '\\')) return 0;
    for (const char *seg = path + 1;; seg++) {
        size_t len = strcspn(seg, "/");
        int last = seg[len] == '\0';
        /* An empty last segment is a trailing slash, which means the folder's index. */
        if (len == 0 && !last) return 0;
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) return 0;
        if (last) return 1;
        seg += len;
    }
}

static int under_api_prefix(const char *path)
{
    return strncmp(path, "/v1", 3) == 0 || strncmp(path, "/v2", 3) == 0
               ? path[3] == '\0' || path[3] == '/'
               : 0;
}

/* If-None-Match holds a list of entity tags, or "*". Weak comparison, as RFC 9110 asks for. */
static int etag_matches(const char *if_none_match, const char *etag)
{
    if (!if_none_match) return 0;
    const char *p = if_none_match;
    while (*p) {
        p += strspn(p, " \t,");
        if (*p == '*') return 1;
        if (strncmp(p, "W/", 2) == 0) p += 2;
        size_t len = strcspn(p, ",");
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == strlen(etag) && memcmp(p, etag, len) == 0) return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

void handle_static(struct request *req, struct response *resp)
{
    const char *root = req->app->static_root;
    const char *path = req->path;
    if (!root || under_api_prefix(path) || !path_is_plain(path)) {
        response_error(resp, 404, "no such resource: %s", path);
        return;
    }
    char *joined = NULL;
    int index = path[strlen(path) - 1] == '/';
    if (asprintf(&joined, "%s%s%s", root, path, index ? "index.html" : "") < 0) {
        response_no_memory(resp, NULL);
        return;
    }
    char resolved[PATH_MAX];
    int inside = realpath(joined, resolved) != NULL && strncmp(resolved, root, strlen(root)) == 0 &&
                 resolved[strlen(root)] == '/';
    free(joined);
    int fd = inside ? open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        response_error(resp, 404, "no such resource: %s", path);
        return;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    response_header(resp, "ETag", "%s", etag);
    response_header(resp, "Cache-Control", "no-cache");
    if (etag_matches(request_header(req, "If-None-Match"), etag)) {
        close(fd);
        response_bytes(resp, 304, NULL, NULL, 0);
        return;
    }
    resp->status = 200;
    resp->content_type = static_content_type(resolved);
    resp->fd = fd;
    resp->fd_size = (uint64_t)st.st_size;
}
