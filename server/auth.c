#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const scope_names[] = {"augment", "infer", "jobs", "admin"};
#define SCOPE_COUNT (sizeof scope_names / sizeof scope_names[0])

unsigned auth_scope_from_name(const char *name)
{
    for (unsigned i = 0; i < SCOPE_COUNT; i++)
        if (strcmp(name, scope_names[i]) == 0) return 1u << i;
    return 0;
}

const char *auth_scope_name(unsigned scope)
{
    for (unsigned i = 0; i < SCOPE_COUNT; i++)
        if (scope == 1u << i) return scope_names[i];
    return NULL;
}

static void sha256(const void *data, size_t size, unsigned char out[32])
{
    unsigned int len = 32;
    EVP_Digest(data, size, out, &len, EVP_sha256(), NULL);
}

void auth_hash_hex(const char *key, char sha256_hex[65])
{
    unsigned char digest[32];
    sha256(key, strlen(key), digest);
    for (int i = 0; i < 32; i++)
        snprintf(sha256_hex + 2 * i, 3, "%02x", digest[i]);
}

enum auth_result auth_check(const struct config *cfg, const char *authorization, unsigned scope,
                            const char **key_name)
{
    if (key_name) *key_name = NULL;
    if (cfg->api_key_count == 0) return AUTH_OK;
    if (!authorization) return AUTH_MISSING;
    /* RFC 6750: the scheme is case-insensitive, then one or more spaces, then the token. */
    if (strncasecmp(authorization, "Bearer ", 7) != 0) return AUTH_INVALID;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    if (*token == '\0') return AUTH_INVALID;
    unsigned char digest[32];
    sha256(token, strlen(token), digest);
    /* Compare with every key, without stopping early, so timing says nothing about which key or
     * how much of it matched. */
    const struct config_api_key *match = NULL;
    for (size_t i = 0; i < cfg->api_key_count; i++)
        if (CRYPTO_memcmp(digest, cfg->api_keys[i].sha256, sizeof digest) == 0)
            match = &cfg->api_keys[i];
    if (!match) return AUTH_INVALID;
    if (key_name) *key_name = match->name;
    if (scope && !(match->scopes & scope)) return AUTH_FORBIDDEN;
    return AUTH_OK;
}

unsigned auth_key_scopes(const struct config *cfg, const char *key_name)
{
    if (cfg->api_key_count == 0) return ~0u;
    for (size_t i = 0; i < cfg->api_key_count; i++)
        if (cfg->api_keys[i].name == key_name) return cfg->api_keys[i].scopes;
    return 0;
}

int auth_generate_key(char key[64], char sha256_hex[65])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char random[32];
    if (RAND_bytes(random, sizeof random) != 1) return -1;
    /* base64url without padding: 32 bytes -> 43 characters. */
    size_t out = 0;
    unsigned bits = 0, value = 0;
    for (size_t i = 0; i < sizeof random; i++) {
        value = (value << 8) | random[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            key[out++] = alphabet[(value >> bits) & 63];
        }
    }
    if (bits > 0) key[out++] = alphabet[(value << (6 - bits)) & 63];
    key[out] = '\0';
    OPENSSL_cleanse(random, sizeof random);
    auth_hash_hex(key, sha256_hex);
    return 0;
}
