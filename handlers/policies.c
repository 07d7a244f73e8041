/* Presets and policy documents: list, show compiled, validate. */
#include <jansson.h>
#include <string.h>

#include "handlers.h"
#include "input.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "request.h"
#include "response.h"

void handle_policies(struct request *req, struct response *resp)
{
    size_t count;
    const struct preset_info *presets = preset_list(&count);
    json_t *list = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(
            list, json_pack("{s:s, s:s}", "name", presets[i].name, "help", presets[i].help));
    response_json(resp, 200, json_pack("{s:o}", "presets", list));
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
        response_error(resp, 404, "no preset named %s (GET /v1/policies lists them)", name);
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
