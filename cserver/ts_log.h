/* Logs: server.log (errors and events), access.log, apps/<app>.log.
 *
 * Every log is an O_APPEND fd that is reopened in place with dup2() on
 * SIGUSR1, so a thread writing at that moment never sees a closed or reused
 * descriptor. With log-dir "-" everything goes to stderr.
 */
#ifndef TS_LOG_H
#define TS_LOG_H

#include <stddef.h>

int ts_log_open(const char *log_dir, char *err, size_t errlen); /* creates dirs */
int ts_log_reopen(void);                                        /* SIGUSR1 */
void ts_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ts_log_error(...) ts_log("error", __VA_ARGS__)
#define ts_log_warn(...) ts_log("warn", __VA_ARGS__)
#define ts_log_info(...) ts_log("info", __VA_ARGS__)

/* Append already formatted access-log bytes (one or more whole lines). */
void ts_log_access_write(const char *data, size_t n);

/* The fd for an app's guest stderr (opened on first use, kept open). */
int ts_log_app_fd(const char *app);

#endif
