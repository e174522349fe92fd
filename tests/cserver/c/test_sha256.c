/* SHA-256 against the FIPS 180-2 / NIST example messages, hashed whole and
 * fed in pieces of every awkward size around the 64-byte block and the
 * 56-byte padding boundary. Built with -fsanitize=address,undefined. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_sha256.h"

static int failures, checks;

static void check_hex(const char *what, const char *got, const char *want) {
  checks++;
  if (strcmp(got, want) != 0) {
    failures++;
    fprintf(stderr, "%s: got %s, want %s\n", what, got, want);
  }
}

static void to_hex(const uint8_t d[32], char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[64] = 0;
}

/* The digest of msg[0..n) fed `piece` bytes per update call. */
static void hash_in_pieces(const uint8_t *msg, size_t n, size_t piece, char hex[65]) {
  ts_sha256_ctx c;
  uint8_t d[32];
  ts_sha256_init(&c);
  for (size_t off = 0; off < n; off += piece) ts_sha256_update(&c, msg + off, n - off < piece ? n - off : piece);
  ts_sha256_final(&c, d);
  to_hex(d, hex);
}

typedef struct {
  const char *name;
  const char *msg; /* NULL: one million 'a' */
  const char *digest;
} vector;

static const vector VECTORS[] = {
    {"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"448-bit", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"896-bit",
     "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    {"million-a", NULL, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
};

int main(void) {
  static const size_t pieces[] = {1, 3, 55, 56, 57, 63, 64, 65, 127, 1000};
  size_t million = 1000000;
  uint8_t *as = malloc(million);
  if (!as) return 2;
  memset(as, 'a', million);
  for (size_t v = 0; v < sizeof VECTORS / sizeof VECTORS[0]; v++) {
    const vector *t = &VECTORS[v];
    const uint8_t *msg = t->msg ? (const uint8_t *)t->msg : as;
    size_t n = t->msg ? strlen(t->msg) : million;
    char hex[65], what[64];
    ts_sha256_hex(msg, n, hex);
    check_hex(t->name, hex, t->digest);
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
      if (pieces[k] == 1 && n == million) continue; /* a million calls add nothing the 3-byte run lacks */
      hash_in_pieces(msg, n, pieces[k], hex);
      snprintf(what, sizeof what, "%s in %zu-byte pieces", t->name, pieces[k]);
      check_hex(what, hex, t->digest);
    }
  }
  free(as);
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
