/* Small shared helpers: string views, a growable byte buffer, time. */
#ifndef TS_UTIL_H
#define TS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* A view into someone else's bytes; never owns, never NUL-terminated. */
typedef struct {
  const char *p;
  size_t n;
} ts_str;

#define TS_STR_LIT(s) ((ts_str){(s), sizeof(s) - 1})

bool ts_str_ieq(ts_str a, const char *lit); /* ASCII case-insensitive == */
bool ts_str_eq(ts_str a, const char *lit);
ts_str ts_str_trim(ts_str s); /* strip SP/HT both ends */
/* Does the comma-separated token list contain tok (case-insensitive)? */
bool ts_str_has_token(ts_str list, const char *tok);

/* Growable buffer. Functions return 0 or -1 (out of memory, or over `cap`). */
typedef struct {
  char *p;
  size_t n;
  size_t cap;   /* allocated */
  size_t limit; /* 0 = unlimited; appends beyond it fail */
} ts_buf;

int ts_buf_reserve(ts_buf *b, size_t extra);
int ts_buf_append(ts_buf *b, const void *data, size_t n);
int ts_buf_puts(ts_buf *b, const char *s);
int ts_buf_printf(ts_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_buf_free(ts_buf *b);
/* s as a JSON string literal (quotes, escapes). */
int ts_buf_json_str(ts_buf *b, const char *s);
/* Request-derived bytes for a log line: '"', '\\' and bytes outside
 * printable ASCII become \xHH, so a client cannot forge or split log lines
 * (nginx's access log escapes the same way). Returns dst, always terminated. */
const char *ts_log_escape(char *dst, size_t cap, const char *p, size_t n);
/* Give the bytes to the caller (buffer becomes empty). */
char *ts_buf_steal(ts_buf *b, size_t *len);

uint64_t ts_now_ms(void); /* CLOCK_MONOTONIC */
uint64_t ts_now_us(void);
double ts_wall_time(void); /* CLOCK_REALTIME, seconds */

/* Copy at most dstsz-1 bytes and NUL-terminate; returns strlen(src). */
size_t ts_strlcpy(char *dst, const char *src, size_t dstsz);

#endif
