/*
 * nx_token.c — token generation (getrandom), SHA-256 (nettle) and
 * constant-time comparison (nettle memeql_sec). See nx_token.h for the format
 * and why an unsalted hash is the right tool for 256-bit random secrets.
 */
#include "tenant/nx_token.h"
#include "nexus.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <nettle/memops.h>
#include <nettle/sha2.h>

static const char nx__hexdig[] = "0123456789abcdef";

static void nx__hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = nx__hexdig[p[i] >> 4];
        out[2 * i + 1] = nx__hexdig[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int nx__unhex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int nx_token_generate(const char *prefix, char out[NX_TOKEN_LEN + 1])
{
    assert(prefix && strlen(prefix) == NX_TOKEN_PREFIX_LEN);
    uint8_t raw[NX_TOKEN_RAW];
    size_t got = 0;
    while (got < sizeof raw) {
        /* Blocks only until the kernel's pool is initialised at boot. */
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return NX_EIO;
        }
        got += (size_t)r;
    }
    memcpy(out, prefix, NX_TOKEN_PREFIX_LEN);
    nx__hex(raw, sizeof raw, out + NX_TOKEN_PREFIX_LEN);
    memset(raw, 0, sizeof raw);
    return 0;
}

void nx_token_hash_of(const char *token, size_t len, nx_token_hash *out)
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, (const uint8_t *)token);
    sha256_digest(&ctx, NX_TOKEN_HASH, out->h);
}

bool nx_token_hash_equal(const nx_token_hash *a, const nx_token_hash *b)
{
    return memeql_sec(a->h, b->h, NX_TOKEN_HASH) != 0;
}

void nx_token_hash_hex(const nx_token_hash *h, char out[2 * NX_TOKEN_HASH + 1])
{
    nx__hex(h->h, NX_TOKEN_HASH, out);
}

int nx_token_hash_parse(const char *hex, size_t len, nx_token_hash *out)
{
    if (len != 2 * NX_TOKEN_HASH)
        return NX_EINVAL;
    nx_token_hash h;
    for (size_t i = 0; i < NX_TOKEN_HASH; i++) {
        int hi = nx__unhex(hex[2 * i]), lo = nx__unhex(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return NX_EINVAL;
        h.h[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = h;
    return 0;
}

uint64_t nx_token_hash_key(const nx_token_hash *h)
{
    uint64_t k;
    memcpy(&k, h->h, sizeof k);
    return k;
}

bool nx_token_admin_valid(const char *s, size_t len)
{
    if (len < NX_ADMIN_TOKEN_MIN || len > NX_ADMIN_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}
