/* GET /openapi.json: the API description compiled into the binary from config/openapi.json. */
#include "handlers.h"
#include "response.h"

extern const unsigned char embedded_openapi_json[];
extern const size_t embedded_openapi_json_len;

void handle_openapi(struct request *req, struct response *resp)
{
    response_text(resp, 200, "application/json", (const char *)embedded_openapi_json,
                  embedded_openapi_json_len);
}
