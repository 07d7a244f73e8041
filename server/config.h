/* Server settings: one table of keys with defaults and ranges, filled from (in rising precedence)
 * the embedded defaults, a JSON file, AUGSERVE_* environment variables and --flags. */
#ifndef AUGSERVE_CONFIG_H
#define AUGSERVE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

/* One configured API key. Only the SHA-256 of the key is ever held. */
struct config_api_key {
    char *name;
    unsigned char sha256[32];
    unsigned scopes; /* bitmask of AUTH_SCOPE_* (auth.h) */
};

struct config {
    char *listen;                /* "host:port" or "[v6]:port"; port 0 picks a free one */
    int io_threads;              /* libmicrohttpd thread pool size */
    int workers;                 /* concurrent heavy requests; 0 = one per CPU core */
    int queue;                   /* heavy requests waiting for a worker before 429 */
    int connection_limit;        /* open connections at once */
    int connection_timeout_s;    /* idle connection timeout */
    int connection_memory_limit; /* bytes per connection for headers and buffers */
    int max_uri_bytes;           /* request target cap (414 past it) */
    int header_timeout_s;        /* a request's line and headers, from its first byte; 0: none */
    int body_timeout_s;          /* a request's body, once its headers are in; 0: none */
    /* open connections from one client address; 0: no limit */
    int max_connections_per_client;
    int64_t max_body_bytes;      /* request body cap (413 past it) */
    int max_parts;               /* multipart parts cap (413 past it) */
    int shutdown_grace_s;        /* time in-flight requests get after SIGTERM */
    int64_t max_pixels;          /* decoded image area cap, checked from the header */
    int max_dimension;           /* decoded image side cap */
    int max_inputs;              /* images in one augment request */
    int max_samples;             /* samples per image in one augment request */
    int max_targets;             /* objects (boxes, masks) per image in one request */
    int max_audio_seconds;       /* decoded clip duration cap, from the header when it says */
    int64_t max_work;            /* a request's estimated work, in op-pixels */
    int request_timeout_s;       /* a heavy request's deadline */
    int64_t max_response_bytes;  /* response body cap */
    int64_t max_request_memory;  /* a request's planned working memory */
    char *static_dir;            /* web UI files served at / */
    char *data_dir;              /* embedded store and files */
    char *store;                 /* "sqlite" or a postgresql:// URL */
    char *models_dir;            /* model repository: <name>/model.onnx */
    int64_t max_model_bytes;     /* ONNX file cap, at start-up and for uploads */
    int64_t max_tensor_elements; /* elements in one inference input tensor */
    int nn_threads;              /* threads one inference uses; 0 = one per CPU core */
    int nn_direct_convolution;   /* bool: no Winograd or small-map products */
    int64_t max_dataset_bytes;   /* a dataset upload's body cap (413 past it) */
    int64_t max_dataset_files;   /* files in a dataset's source, and images */
    int max_classes;             /* classes in one dataset */
    int dataset_image_size;      /* mixed-size images' shorter side in a dataset's cache */
    char *datasets_dir;          /* server-side datasets POST /v1/datasets?path= reads; "": none */
    int job_workers;             /* job runner threads; 0: jobs only queue */
    int job_poll_s;              /* an idle runner's look at the store, unwoken */
    int job_threads;             /* threads one job's engine work uses; 0 = cores / job_workers */
    int job_max_attempts;        /* starts before a job whose lease expired stays stopped */
    int heartbeat_s;             /* seconds between a running job's lease renewals */
    int lease_s;                 /* seconds without a heartbeat before a lease expires */
    char *access_log;            /* "stderr", "off" or a file path */
    int debug_routes;            /* bool: mount /v1/debug/... (tests only) */
    struct config_api_key *api_keys;
    size_t api_key_count;
};

/* Fills cfg with the defaults, then the JSON file at path (NULL: none), then the variables in envp
 * (NULL-terminated "NAME=value" strings, as environ), then argv[0..argc), which holds only setting
 * flags ("--max-body-bytes 10" or "--max-body-bytes=10"). Returns 0, or -1 with err (ENG_INVALID
 * naming the key and the source, ENG_NO_MEMORY); cfg then holds nothing to free. */
int config_load(struct config *cfg, const char *path, char *const envp[], int argc,
                char *const argv[], struct eng_error *err);

void config_free(struct config *cfg);

/* The effective settings as a JSON document (malloc'd, caller frees). With redact, secret values
 * (key hashes) are replaced by "<redacted>". */
char *config_to_json(const struct config *cfg, int redact);

/* One line per setting: flag, environment variable, default and meaning. */
void config_print_help(FILE *out);

/* Parses a 64-hex-digit SHA-256 into out. Returns 0 or -1. */
int config_parse_sha256_hex(const char *hex, unsigned char out[32]);

#endif
