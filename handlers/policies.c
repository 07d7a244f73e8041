/* Presets, saved policies and policy documents: list, show compiled, save, delete, validate. */
#include <jansson.h>
#include <string.h>

#include "app.h"
#include "handlers.h"
#include "input.h"
#include "json_text.h"
#include "log.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "request.h"
#include "response.h"
#include "saved_policies.h"

/* A saved policy as GET /v1/policies/{name} shows it, with its document when document is set:
 * {"name", "owner", "created", "updated"[, "policy"]}. */
static json_t *saved_document(const struct policy_record *r, int document)
{
    char created[40], updated[40];
    log_format_time_ms(r->created_ms, created, sizeof created);
    log_format_time_ms(r->updated_ms, updated, sizeof updated);
    json_t *out = json_pack("{s:s, s:s?, s:s, s:s}", "name", r->name, "owner", r->owner, "created",
                            created, "updated", updated);
    if (out && document) json_object_set(out, "policy", r->document);
    return out;
}

static int list_saved(const struct policy_record *r, void *ctx, struct eng_error *err)
{
    json_t *item = saved_document(r, 0);
    return item && json_array_append_new(ctx, item) == 0 ? 0 : eng_no_memory(err);
}

void handle_policies(struct request *req, struct response *resp)
{
    size_t count;
    const struct preset_info *presets = preset_list(&count);
    json_t *list = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(
            list, json_pack("{s:s, s:s}", "name", presets[i].name, "help", presets[i].help));
    json_t *saved = json_array();
    struct eng_error err;
    if (!saved || policy_store_each(req->app->storage, list_saved, saved, &err) != 0) {
        json_decref(list);
        json_decref(saved);
        response_engine_error(resp, &err);
        return;
    }
    response_json(resp, 200, json_pack("{s:o, s:o}", "presets", list, "saved", saved));
}

/* The compiled document of a policy, or a 422 naming the bad node. */
static void respond_compiled(struct response *resp, struct policy *p, const struct eng_error *err,
                             const char *name)
{
    if (!p) {
        input_policy_error(resp, err);
        return;
    }
    json_t *doc = policy_to_json(p);
    policy_free(p);
    response_json(resp, 200,
                  name ? json_pack("{s:s, s:o}", "name", name, "policy", doc)
                       : json_pack("{s:b, s:o}", "valid", 1, "policy", doc));
}

void handle_policy_get(struct request *req, struct response *resp)
{
    const char *name = request_param(req, "name");
    size_t count;
    const struct preset_info *presets = preset_list(&count);
    int known = 0;
    for (size_t i = 0; i < count && !known; i++)
        known = strcmp(presets[i].name, name) == 0;
    if (!known) {
        struct policy_record r;
        struct eng_error err;
        if (policy_store_get(req->app->storage, name, &r, &err) != 0) {
            if (err.code == ENG_NOT_FOUND)
                response_error(resp, 404,
                               "no preset or saved policy named %s (GET /v1/policies lists them)",
                               name);
            else
                response_engine_error(resp, &err);
            return;
        }
        response_json(resp, 200, saved_document(&r, 1));
        policy_record_clear(&r);
        return;
    }
    json_t *ref = json_string(name);
    struct eng_error err = {0};
    struct policy *p = ref ? policy_parse(ref, &err) : NULL;
    json_decref(ref);
    respond_compiled(resp, p, &err, name);
}

void handle_policy_validate(struct request *req, struct response *resp)
{
    json_t *doc = input_json_body(req, resp, "the policy document");
    if (!doc) return;
    struct eng_error err = {0};
    struct policy *p = policy_parse(doc, &err);
    json_decref(doc);
    respond_compiled(resp, p, &err, NULL);
}

/* Saves body's "policy" as name (from the body when name is NULL), answering the record with
 * 201 when the name is new and 200 when it replaced one. */
static void save(struct request *req, struct response *resp, const char *name, int replace)
{
    static const char *const create_members[] = {"name", "policy", NULL};
    static const char *const replace_members[] = {"policy", NULL};
    json_t *body = input_json_body(
        req, resp, name ? "{\"policy\": {...}}" : "{\"name\": ..., \"policy\": {...}}");
    if (!body) return;
    struct eng_error err;
    if (!json_is_object(body)) {
        response_error(resp, 422, "the body must be an object: %s",
                       name ? "{\"policy\": {...}}" : "{\"name\": ..., \"policy\": {...}}");
    } else if (json_check_members(body, name ? replace_members : create_members, "", "member",
                                  &err) != 0) {
        response_engine_error(resp, &err);
    } else if (!name && !json_is_string(json_object_get(body, "name"))) {
        response_error(resp, 422, "name: required, a string");
    } else if (!json_object_get(body, "policy")) {
        response_error(resp, 422, "policy: required, a policy document or a preset name");
    } else {
        if (!name) name = json_string_value(json_object_get(body, "name"));
        struct policy_record r;
        int created = 0;
        if (saved_policies_check_name(name, &err) != 0) {
            response_engine_error(resp, &err);
        } else if (saved_policies_put(req->app->storage, name, json_object_get(body, "policy"),
                                      req->key_name, replace, &r, &created, &err) != 0) {
            /* The name passed: a document's error names its node, as validate's does. */
            if (err.code == ENG_INVALID)
                input_policy_error(resp, &err);
            else
                response_engine_error(resp, &err);
        } else {
            response_header(resp, "Location", "/v1/policies/%s", r.name);
            response_json(resp, created ? 201 : 200, saved_document(&r, 1));
            policy_record_clear(&r);
        }
    }
    json_decref(body);
}

void handle_policy_create(struct request *req, struct response *resp)
{
    save(req, resp, NULL, 0);
}

void handle_policy_put(struct request *req, struct response *resp)
{
    save(req, resp, request_param(req, "name"), 1);
}

void handle_policy_delete(struct request *req, struct response *resp)
{
    struct eng_error err;
    if (saved_policies_delete(req->app->storage, request_param(req, "name"), &err) != 0)
        response_engine_error(resp, &err);
    else
        response_text(resp, 204, NULL, "", 0); /* no body, so no Content-Type */
}
