/* The listening socket and the process limits that bound what it accepts. */
#ifndef TS_LISTEN_H
#define TS_LISTEN_H

#include <stddef.h>

#include "ts_conf.h"

/* Bind and listen on cfg's address (non-blocking, close-on-exec): the fd, or
 * -1 with a one-line message in err naming the address. */
int ts_listen_open(const ts_config *cfg, char *err, size_t errlen);

/* Bind and listen on cfg->listen_unix (mode 0600, non-blocking,
 * close-on-exec): the fd, or -1 with a one-line message in err. The socket is
 * bound under a temporary name and renamed over the path, so a server still
 * running keeps answering there until this one is ready (and a failed start
 * leaves it so). *ino gets the socket file's inode, for ts_listen_unlink_unix. */
int ts_listen_open_unix(const ts_config *cfg, unsigned long *ino, char *err, size_t errlen);

/* Remove the socket file at path if it is still the one with inode ino (a
 * newer server may have taken the path meanwhile). */
void ts_listen_unlink_unix(const char *path, unsigned long ino);

/* max-connections = auto, resolved once at start (raises the soft open-file
 * limit to the hard one as a side effect). */
int ts_listen_auto_max_connections(void);

#endif
