/*
 * nx_token.h — tenant and admin secrets: generation, hashing, comparison.
 *
 * A token is 32 random bytes from getrandom(2), shown to the user ONCE as
 *   "nxt_" + 64 lowercase hex digits            (68 characters)
 * Only its SHA-256 (nettle) is kept, in memory and on disk: a leaked
 * tenants.json does not leak credentials, and since the secret has 256 bits of
 * entropy a plain (unsalted, fast) hash is enough — there is nothing to
 * brute-force. Hashes are compared with nettle's memeql_sec (constant time).
 *
 * Lookup by token (nx_registry_authenticate) indexes tenants by the first 8
 * bytes of the hash: the timing of that probe depends only on SHA-256 of what
 * the caller sent, which tells an attacker nothing about any stored secret;
 * the full 32-byte hash is then compared in constant time.
 *
 * Admin tokens read from a file or NEXUS_ADMIN_TOKEN may be any printable
 * string of 16..256 bytes (operators bring their own); generated ones use the
 * "nxa_" prefix.
 */
#ifndef NX_TOKEN_H
#define NX_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define NX_TOKEN_RAW 32                       /* random bytes */
#define NX_TOKEN_PREFIX_LEN 4                 /* "nxt_" / "nxa_" */
#define NX_TOKEN_LEN (NX_TOKEN_PREFIX_LEN + 2 * NX_TOKEN_RAW) /* 68 */
#define NX_TOKEN_HASH 32                      /* SHA-256 digest */
#define NX_ADMIN_TOKEN_MIN 16
#define NX_ADMIN_TOKEN_MAX 256

typedef struct nx_token_hash {
    uint8_t h[NX_TOKEN_HASH];
} nx_token_hash;

/* Fills out (NX_TOKEN_LEN + 1 bytes, NUL-terminated) with a fresh token
 * "<prefix>" + hex(32 random bytes); prefix is 4 chars ("nxt_", "nxa_").
 * NX_EIO if getrandom fails. */
int nx_token_generate(const char *prefix, char out[NX_TOKEN_LEN + 1]);

/* SHA-256 of the token's bytes. */
void nx_token_hash_of(const char *token, size_t len, nx_token_hash *out);

/* Constant-time equality of two hashes. */
bool nx_token_hash_equal(const nx_token_hash *a, const nx_token_hash *b);

/* Lowercase hex (65 bytes with NUL) and back; parse returns NX_EINVAL unless
 * exactly 64 hex digits. */
void nx_token_hash_hex(const nx_token_hash *h, char out[2 * NX_TOKEN_HASH + 1]);
int nx_token_hash_parse(const char *hex, size_t len, nx_token_hash *out);

/* First 8 bytes of the hash as an index key. */
uint64_t nx_token_hash_key(const nx_token_hash *h);

/* True if s is acceptable as an admin token (16..256 bytes, printable ASCII,
 * no spaces). */
bool nx_token_admin_valid(const char *s, size_t len);

#endif
