/* SHA-256 (FIPS 180-4), for module identity and cache keys. */
#ifndef TS_SHA256_H
#define TS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[8];
  uint64_t len;
  uint8_t buf[64];
  size_t fill;
} ts_sha256_ctx;

void ts_sha256_init(ts_sha256_ctx *c);
void ts_sha256_update(ts_sha256_ctx *c, const void *data, size_t n);
void ts_sha256_final(ts_sha256_ctx *c, uint8_t out[32]);
/* hex must have room for 65 bytes */
void ts_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
