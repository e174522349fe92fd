#include "ts_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

bool ts_str_ieq(ts_str a, const char *lit) {
  size_t n = strlen(lit);
  if (a.n != n) return false;
  for (size_t i = 0; i < n; i++)
    if (lower(a.p[i]) != lower(lit[i])) return false;
  return true;
}

bool ts_str_eq(ts_str a, const char *lit) {
  size_t n = strlen(lit);
  return a.n == n && memcmp(a.p, lit, n) == 0;
}

ts_str ts_str_trim(ts_str s) {
  while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
  while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
  return s;
}

bool ts_str_has_token(ts_str list, const char *tok) {
  size_t i = 0;
  while (i <= list.n) {
    size_t j = i;
    while (j < list.n && list.p[j] != ',') j++;
    ts_str item = ts_str_trim((ts_str){list.p + i, j - i});
    if (ts_str_ieq(item, tok)) return true;
    i = j + 1;
  }
  return false;
}

int ts_buf_reserve(ts_buf *b, size_t extra) {
  if (b->limit && b->n + extra > b->limit) return -1;
  if (b->n + extra <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + extra) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

int ts_buf_append(ts_buf *b, const void *data, size_t n) {
  if (n == 0) return 0;
  if (ts_buf_reserve(b, n)) return -1;
  memcpy(b->p + b->n, data, n);
  b->n += n;
  return 0;
}

int ts_buf_puts(ts_buf *b, const char *s) { return ts_buf_append(b, s, strlen(s)); }

const char *ts_log_escape(char *dst, size_t cap, const char *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  if (!cap) return dst;
  for (size_t i = 0; i < n && o + 1 < cap; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      dst[o++] = (char)c;
    } else {
      if (o + 5 > cap) break;
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[c >> 4];
      dst[o++] = hex[c & 15];
    }
  }
  dst[o] = 0;
  return dst;
}

int ts_buf_printf(ts_buf *b, const char *fmt, ...) {
  va_list ap;
  char small[256];
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return -1;
  if ((size_t)n < sizeof small) return ts_buf_append(b, small, (size_t)n);
  if (ts_buf_reserve(b, (size_t)n + 1)) return -1;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)n;
  return 0;
}

void ts_buf_free(ts_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

char *ts_buf_steal(ts_buf *b, size_t *len) {
  char *p = b->p;
  if (len) *len = b->n;
  b->p = NULL;
  b->n = b->cap = 0;
  return p;
}

uint64_t ts_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ts_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double ts_wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

size_t ts_strlcpy(char *dst, const char *src, size_t dstsz) {
  size_t n = strlen(src);
  if (dstsz) {
    size_t c = n < dstsz - 1 ? n : dstsz - 1;
    memcpy(dst, src, c);
    dst[c] = 0;
  }
  return n;
}

int ts_buf_json_str(ts_buf *b, const char *s) {
  int rc = ts_buf_append(b, "\"", 1);
  for (; *s && !rc; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') rc = ts_buf_printf(b, "\\%c", c);
    else if (c < 0x20) rc = ts_buf_printf(b, "\\u%04x", c);
    else rc = ts_buf_append(b, s, 1);
  }
  return rc ? rc : ts_buf_append(b, "\"", 1);
}
