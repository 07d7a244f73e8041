/* /v1/jobs: submitting, listing, reading and cancelling jobs, and the files they wrote. The records
 * come from the store (job_store.h); submission goes through the runners (jobs.h), which validate
 * the params with the job's kind first. With API keys configured, a key sees only the jobs it
 * submitted, unless it has the admin scope; without keys everything is open. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "auth.h"
#include "core/parse.h"
#include "handlers.h"
#include "input.h"
#include "job_kind.h"
#include "jobs.h"
#include "json_text.h"
#include "log.h"
#include "request.h"
#include "response.h"
#include "saved_policies.h"

#define LIST_DEFAULT 20
#define LIST_MAX     100

/* The owner whose jobs req's key sees, or NULL for everyone's. */
static const char *visible_owner(const struct request *req)
{
    return auth_key_scopes(req->app->cfg, req->key_name) & AUTH_SCOPE_ADMIN ? NULL : req->key_name;
}

int job_of_request(struct request *req, struct response *resp, struct job *job)
{
    const char *id = request_param(req, "id");
    struct eng_error err;
    if (job_store_get(req->app->storage, id, job, &err) != 0) {
        response_engine_error(resp, &err);
        return -1;
    }
    const char *owner = visible_owner(req);
    if (owner && (!job->owner || strcmp(job->owner, owner) != 0)) {
        job_clear(job);
        response_error(resp, 404, "no such job: %s", id);
        return -1;
    }
    return 0;
}

static json_t *time_or_null(int64_t ms)
{
    if (!ms) return json_null();
    char text[40];
    log_format_time_ms(ms, text, sizeof text);
    return json_string(text);
}

/* The job document of the API (config/openapi.json's Job). */
static json_t *job_document(const struct job *job)
{
    return json_pack(
        "{s:s, s:s, s:s, s:O, s:o, s:o, s:{s:f, s:o}, s:O?, s:o, s:i, s:b, s:o, s:o, "
        "s:o}",
        "id", job->id, "kind", job->kind, "state", job_state_name(job->state), "params",
        job->params, "owner", job->owner ? json_string_lossy(job->owner) : json_null(), "parent",
        job->parent ? json_string(job->parent) : json_null(), "progress", "fraction", job->progress,
        "phase", job->phase ? json_string_lossy(job->phase) : json_null(), "result", job->result,
        "error", job->error ? json_string_lossy(job->error) : json_null(), "attempts",
        job->attempts, "cancel_requested", job->cancel_requested, "created",
        time_or_null(job->created_ms), "started", time_or_null(job->started_ms), "finished",
        time_or_null(job->finished_ms));
}

static void respond_job(struct response *resp, int status, const struct job *job)
{
    json_t *doc = job_document(job);
    if (!doc) {
        response_no_memory(resp, "while writing the job");
        return;
    }
    response_json(resp, status, doc);
}

/* The body of POST /v1/jobs: {"kind", "params"}; 0, or -1 with err naming the member. */
static int read_submission(const json_t *doc, const char **kind, json_t **params,
                           struct eng_error *err)
{
    if (!json_is_object(doc))
        return eng_fail(err, ENG_INVALID, "the body must be a JSON object: {\"kind\", \"params\"}");
    static const char *const members[] = {"kind", "params", NULL};
    if (json_check_members(doc, members, "", "member", err) != 0) return -1;
    *kind = json_string_value(json_object_get(doc, "kind"));
    *params = json_object_get(doc, "params");
    if (!*kind) return eng_fail(err, ENG_INVALID, "kind: required, the name of a job kind");
    return 0;
}

/* Refuses the kinds the server queues itself (JOB_KIND_INTERNAL): 0, or -1 with err. */
static int check_submittable(const struct app *app, const char *kind, struct eng_error *err)
{
    const struct job_kind *k = job_kind_find(kind, app->cfg->debug_routes);
    if (k && (k->flags & JOB_KIND_INTERNAL))
        return eng_fail(err, ENG_INVALID,
                        "kind: %s jobs are queued by the server itself (a dataset import by "
                        "POST /v1/datasets, a search's trials by the search), not by POST /v1/jobs",
                        kind);
    return 0;
}

void handle_jobs_create(struct request *req, struct response *resp)
{
    json_t *doc = input_json_body(req, resp, "{\"kind\": ..., \"params\": {...}}");
    if (!doc) return;
    const char *kind = NULL;
    json_t *params = NULL;
    struct eng_error err;
    struct job job;
    if (read_submission(doc, &kind, &params, &err) != 0 ||
        check_submittable(req->app, kind, &err) != 0 ||
        saved_policies_snapshot(params, &err) != 0 ||
        jobs_submit(req->app->jobs, kind, params, req->key_name, &job, &err) != 0) {
        response_engine_error(resp, &err);
    } else {
        response_header(resp, "Location", "/v1/jobs/%s", job.id);
        respond_job(resp, 202, &job);
        job_clear(&job);
    }
    json_decref(doc);
}

/* The query of GET /v1/jobs into f; 0, or -1 with the 422 written. */
static int read_filter(const struct request *req, struct response *resp, struct job_filter *f)
{
    const char *state = request_query(req, "state");
    const char *limit = request_query(req, "limit");
    const char *children = request_query(req, "children");
    unsigned long long n = LIST_DEFAULT, with_children = 0;
    *f = (struct job_filter){.state = -1,
                             .kind = request_query(req, "kind"),
                             .owner = visible_owner(req),
                             .after = request_query(req, "after"),
                             .parent = request_query(req, "parent")};
    if (state && (f->state = job_state_from_name(state)) < 0) {
        response_error(resp, 422,
                       "state: one of queued, running, succeeded, failed, cancelled, interrupted, "
                       "waiting");
        return -1;
    }
    if (limit && parse_whole(limit, 1, LIST_MAX, &n) != PARSE_OK) {
        response_error(resp, 422, "limit: a whole number in [1, %d]", LIST_MAX);
        return -1;
    }
    /* A search's trials are its children: listed with parent=<its id>, or with children=1
     * among the others; a search of 200 trials would otherwise fill the list. */
    if (children && parse_whole(children, 0, 1, &with_children) != PARSE_OK) {
        response_error(resp, 422, "children: 0 or 1");
        return -1;
    }
    f->limit = (size_t)n;
    f->children = (int)with_children;
    return 0;
}

void handle_jobs_list(struct request *req, struct response *resp)
{
    struct job_filter f;
    if (read_filter(req, resp, &f) != 0) return;
    /* One more than the page, to know whether another follows. */
    f.limit++;
    struct job *jobs = NULL;
    size_t count = 0;
    struct eng_error err;
    if (job_store_list(req->app->storage, &f, &jobs, &count, &err) != 0) {
        if (err.code == ENG_NOT_FOUND)
            response_error(resp, 422, "after: no such job: %s", f.after);
        else
            response_engine_error(resp, &err);
        return;
    }
    size_t shown = count < f.limit ? count : f.limit - 1;
    json_t *list = json_array();
    for (size_t i = 0; list && i < shown; i++)
        if (json_array_append_new(list, job_document(&jobs[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    json_t *doc = list ? json_pack("{s:o, s:o}", "jobs", list, "next",
                                   count > shown ? json_string(jobs[shown - 1].id) : json_null())
                       : NULL;
    for (size_t i = 0; i < count; i++)
        job_clear(&jobs[i]);
    free(jobs);
    if (!doc) {
        response_no_memory(resp, "while listing jobs");
        return;
    }
    response_json(resp, 200, doc);
}

void handle_job_get(struct request *req, struct response *resp)
{
    struct job job;
    if (job_of_request(req, resp, &job) != 0) return;
    respond_job(resp, 200, &job);
    job_clear(&job);
}

void handle_job_cancel(struct request *req, struct response *resp)
{
    struct job job;
    if (job_of_request(req, resp, &job) != 0) return;
    enum job_state state;
    struct eng_error err;
    int rc = job_store_cancel(req->app->storage, job.id, &state, &err);
    job_clear(&job);
    if (rc == 0) rc = job_store_get(req->app->storage, request_param(req, "id"), &job, &err);
    if (rc != 0) {
        response_engine_error(resp, &err);
        return;
    }
    /* A running job stops at its next check: accepted, not done yet. */
    respond_job(resp, job.state == JOB_RUNNING ? 202 : 200, &job);
    job_clear(&job);
}

/* The folder of the job's artifacts into path; 0, or -1 with the answer written. */
static int artifacts_folder(struct request *req, struct response *resp, char *path, size_t size)
{
    struct job job;
    if (job_of_request(req, resp, &job) != 0) return -1;
    int rc = jobs_artifacts_path(req->app, job.id, path, size);
    job_clear(&job);
    if (rc != 0) response_error(resp, 500, "data_dir is too long for a job's folder");
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

/* The regular files with artifact names in folder, sorted by name (readdir's order is the file
 * system's), as {"name", "size", "content_type"}; NULL with err. */
static json_t *list_artifacts(const char *folder, struct eng_error *err)
{
    DIR *dir = opendir(folder);
    if (!dir && errno != ENOENT) {
        eng_fail(err, ENG_INTERNAL, "cannot read the job's artifacts: %s", strerror(errno));
        return NULL;
    }
    json_t **items = NULL;
    size_t count = 0;
    int failed = 0;
    for (struct dirent *entry; !failed && dir && (entry = readdir(dir));) {
        struct stat st;
        if (!job_artifact_name_ok(entry->d_name) ||
            fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        json_t **grown = realloc(items, (count + 1) * sizeof *items);
        json_t *item =
            json_pack("{s:s, s:I, s:s}", "name", entry->d_name, "size", (json_int_t)st.st_size,
                      "content_type", static_content_type(entry->d_name));
        if (grown) items = grown;
        if (!grown || !item) {
            json_decref(item);
            failed = 1;
        } else {
            items[count++] = item;
        }
    }
    if (dir) closedir(dir);
    if (count) qsort(items, count, sizeof *items, by_name);
    json_t *list = failed ? NULL : json_array();
    for (size_t i = 0; i < count; i++) {
        if (!list)
            json_decref(items[i]);
        else if (json_array_append_new(list, items[i]) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    free(items);
    if (!list) eng_no_memory(err);
    return list;
}

void handle_job_artifacts(struct request *req, struct response *resp)
{
    char folder[PATH_MAX];
    if (artifacts_folder(req, resp, folder, sizeof folder) != 0) return;
    struct eng_error err;
    json_t *list = list_artifacts(folder, &err);
    if (!list) {
        response_engine_error(resp, &err);
        return;
    }
    response_json(resp, 200, json_pack("{s:o}", "artifacts", list));
}

void handle_job_artifact(struct request *req, struct response *resp)
{
    const char *name = request_param(req, "name");
    if (!job_artifact_name_ok(name)) {
        response_error(resp, 422,
                       "name: an artifact's name is letters, digits, '.', '-' and '_', and does "
                       "not start with '.'");
        return;
    }
    char folder[PATH_MAX], path[PATH_MAX];
    if (artifacts_folder(req, resp, folder, sizeof folder) != 0) return;
    int fd = snprintf(path, sizeof path, "%s/%s", folder, name) < (int)sizeof path
                 ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                 : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        response_error(resp, 404, "the job has no artifact %s", name);
        return;
    }
    response_bytes(resp, 200, static_content_type(name), NULL, 0);
    resp->fd = fd;
    resp->fd_size = (uint64_t)st.st_size;
}
