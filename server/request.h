/* What a handler sees of an HTTP request: everything copied out of libmicrohttpd, so a handler
 * may run on any thread and never touches the connection. */
#ifndef AUGSERVE_REQUEST_H
#define AUGSERVE_REQUEST_H

#include <stddef.h>

#include "router.h"

struct app;

/* The longest request id: a client's X-Request-Id is echoed up to this length. */
#define REQUEST_ID_MAX 128

struct request_kv {
    char *name;
    char *value;
};

/* One multipart/form-data part: a form field (filename NULL) or a file. */
struct request_part {
    char *name;
    char *filename;
    char *content_type;
    unsigned char *data;
    size_t size;
};

struct request {
    struct app *app;
    const char *method;
    const char *path; /* decoded path, without the query */
    const char *request_id;
    const char *key_name; /* the API key that authorised it, or NULL */
    struct route_params params;
    char *param_values[ROUTE_MAX_PARAMS]; /* params' values as strings */
    struct request_kv *query;
    size_t query_count;
    struct request_kv *headers;
    size_t header_count;
    /* A raw body, unless the request was multipart/form-data: then parts. */
    unsigned char *body;
    size_t body_size;
    struct request_part *parts;
    size_t part_count;
    /* A ROUTE_UPLOAD route's body in a file under data_dir/uploads (NULL on other routes):
     * the raw body, or the multipart part "archive" (listed in parts with an empty value;
     * upload_part says whether the body had one). The file is removed once the handler returns;
     * a handler that keeps it renames it and sets upload_path to NULL. */
    const char *upload_path;
    unsigned long long upload_size;
    int upload_part;
};

/* A new request id (hex digits) into out. */
void request_new_id(char out[REQUEST_ID_MAX + 1]);

/* Lookups return NULL when absent. Header names compare case-insensitively. */
const char *request_query(const struct request *req, const char *name);
const char *request_header(const struct request *req, const char *name);
const char *request_param(const struct request *req, const char *name);
const struct request_part *request_part(const struct request *req, const char *name);

#endif
