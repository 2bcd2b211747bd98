/*
 * bench/sha1.h — a small SHA-1 (FIPS 180-4), written for the UTS benchmark,
 * whose random number generator is defined in terms of SHA-1 digests.
 * Not for anything security-related.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WEFT_BENCH_SHA1_H
#define WEFT_BENCH_SHA1_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHA1_DIGEST_LEN 20

typedef struct sha1_ctx {
    uint32_t h[5];
    uint64_t total;      /* bytes hashed so far */
    uint8_t  buf[64];    /* pending partial block */
    size_t   used;       /* bytes in buf */
} sha1_ctx;

void sha1_init(sha1_ctx *c);
void sha1_update(sha1_ctx *c, const void *data, size_t len);
void sha1_final(sha1_ctx *c, uint8_t out[SHA1_DIGEST_LEN]);

/* One-shot digest of len bytes. */
void sha1_digest(const void *data, size_t len, uint8_t out[SHA1_DIGEST_LEN]);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_BENCH_SHA1_H */
