/* The listening socket and the process limits that bound what it accepts. */
#ifndef TS_LISTEN_H
#define TS_LISTEN_H

#include <stddef.h>

#include "ts_conf.h"

/* Bind and listen on cfg's address (non-blocking, close-on-exec): the fd, or
 * -1 with a one-line message in err naming the address. */
int ts_listen_open(const ts_config *cfg, char *err, size_t errlen);

/* max-connections = auto, resolved once at start (raises the soft open-file
 * limit to the hard one as a side effect). */
int ts_listen_auto_max_connections(void);

#endif
