/* The HTTP side: worker threads, each one epoll loop over a shared listener
 * (EPOLLEXCLUSIVE), keep-alive and pipelined requests, limits, graceful drain;
 * guests run on a separate pool of guest threads and their results come back
 * to the owning worker, so a slow guest never stalls a worker's other
 * connections. */
#ifndef TS_SERVER_H
#define TS_SERVER_H

#include "ts_conf.h"
#include "ts_engine.h"

/* Bind and listen; 0 or -1 with err naming the address. */
int ts_server_listen(const ts_config *cfg, char *err, size_t errlen);
int ts_server_start(const ts_config *cfg, ts_engine *engine);
/* Stop accepting, finish requests in flight, close idle connections, return
 * when every worker has exited (or the drain timeout passed). */
void ts_server_drain(void);

/* Hand the event loop of a worker whose thread runs a guest inline for too
 * long to a helper thread (ts_server.c, TAKEOVER_US). Called by the epoch
 * ticker; safe before ts_server_start. */
void ts_server_watch(void);

/* The admin endpoints (ts_admin.c): status code, body into b, content type. */
int ts_admin_handle(const char *path, size_t len, ts_str method, ts_buf *b, const char **ctype);

#endif
