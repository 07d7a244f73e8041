/* API keys: clients send "Authorization: Bearer <key>"; the server holds only SHA-256 hashes and
 * compares them in constant time. */
#ifndef AUGSERVE_AUTH_H
#define AUGSERVE_AUTH_H

#include <stddef.h>

#include "config.h"

enum auth_scope {
    AUTH_SCOPE_AUGMENT = 1u << 0,
    AUTH_SCOPE_INFER = 1u << 1,
    AUTH_SCOPE_JOBS = 1u << 2,
    AUTH_SCOPE_ADMIN = 1u << 3,
};

/* The bit of a scope name ("augment", ...), or 0 for an unknown name. */
unsigned auth_scope_from_name(const char *name);
/* The name of a single scope bit, or NULL. */
const char *auth_scope_name(unsigned scope);

enum auth_result {
    AUTH_OK,        /* no keys configured, or a known key holding the scope */
    AUTH_MISSING,   /* keys are configured and the request carries none: 401 */
    AUTH_INVALID,   /* malformed header or unknown key: 401 */
    AUTH_FORBIDDEN, /* known key without the scope: 403 */
};

/* Checks an Authorization header value (NULL if absent) against the configured keys for a route
 * that needs `scope` (0: any valid key). On AUTH_OK with keys configured, *key_name (if not NULL)
 * points at the matching key's name, owned by cfg. */
enum auth_result auth_check(const struct config *cfg, const char *authorization, unsigned scope,
                            const char **key_name);

/* The scopes of the key auth_check matched, given its *key_name (compared by address); every scope
 * when no keys are configured, where everything is open. */
unsigned auth_key_scopes(const struct config *cfg, const char *key_name);

/* A new random key (43 base64url characters from 32 random bytes) and its SHA-256 as 64 hex
 * digits. Returns 0, or -1 when the random generator fails. */
int auth_generate_key(char key[64], char sha256_hex[65]);

/* SHA-256 of a key as 64 lowercase hex digits. */
void auth_hash_hex(const char *key, char sha256_hex[65]);

#endif
