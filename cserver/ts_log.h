/* Logs: server.log (errors and events), access.log, apps/<app>.log.
 *
 * Every log is an O_APPEND fd that is reopened in place with dup2() on
 * SIGUSR1, so a thread writing at that moment never sees a closed or reused
 * descriptor. With log-dir "-" everything goes to stderr.
 */
#ifndef TS_LOG_H
#define TS_LOG_H

#include <stddef.h>
#include <stdint.h>

int ts_log_open(const char *log_dir, char *err, size_t errlen); /* creates dirs */
int ts_log_reopen(void);                                        /* SIGUSR1 */
void ts_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ts_log_error(...) ts_log("error", __VA_ARGS__)
#define ts_log_warn(...) ts_log("warn", __VA_ARGS__)
#define ts_log_info(...) ts_log("info", __VA_ARGS__)

/* Append already formatted access-log bytes (one or more whole lines). */
void ts_log_access_write(const char *data, size_t n);

/* An app's guest stderr log, apps/<app>.log: opened on first use, kept open.
 * NULL with log-dir "-" (or past the table's size): the server's stderr. */
typedef struct ts_app_log ts_app_log;
ts_app_log *ts_log_app(const char *app);

/* Append guest stderr bytes. A log that would grow past the limit set with
 * ts_log_set_app_limit is first rotated to <app>.log.1 (replacing an older
 * one), so a guest writing without end fills at most twice the limit. */
void ts_log_app_write(ts_app_log *log, const void *p, size_t n);
void ts_log_set_app_limit(uint64_t bytes); /* 0 = no limit */

#endif
