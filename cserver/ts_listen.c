#include "ts_listen.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int ts_listen_open(const ts_config *cfg, char *err, size_t errlen) {
  struct addrinfo hints = {0}, *res = NULL;
  char port[16];
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(port, sizeof port, "%d", cfg->listen_port);
  const char *host = cfg->listen_host;
  if (strcmp(host, "*") == 0) host = NULL;
  char hostbuf[256];
  size_t hl = strlen(cfg->listen_host);
  if (host && hl > 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]:9000 */
    snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)(hl - 2), host + 1);
    host = hostbuf;
  }
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai) {
    snprintf(err, errlen, "cannot resolve listen address %s:%d: %s", cfg->listen_host, cfg->listen_port,
             gai_strerror(gai));
    return -1;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    freeaddrinfo(res);
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
    int e = errno;
    snprintf(err, errlen, "cannot listen on %s:%d: %s%s", cfg->listen_host, cfg->listen_port, strerror(e),
             e == EADDRINUSE ? " (port taken by another process)" : "");
    close(fd);
    freeaddrinfo(res);
    return -1;
  }
  freeaddrinfo(res);
  return fd;
}

int ts_listen_open_unix(const ts_config *cfg, unsigned long *ino, char *err, size_t errlen) {
  struct sockaddr_un tmp = {.sun_family = AF_UNIX};
  const char *path = cfg->listen_unix;
  int n = snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s.%d", path, (int)getpid());
  if (n < 0 || (size_t)n >= sizeof tmp.sun_path) {
    snprintf(err, errlen, "listen-unix path too long (%zu bytes; at most %zu): %s", strlen(path),
             sizeof tmp.sun_path - 9, path);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  unlink(tmp.sun_path);     /* left by a killed server with the same pid */
  mode_t old = umask(0177); /* srw------- */
  int bad = bind(fd, (struct sockaddr *)&tmp, sizeof tmp) != 0;
  umask(old);
  struct stat st;
  if (bad || listen(fd, 1024) != 0 || rename(tmp.sun_path, path) != 0 || stat(path, &st) != 0) {
    snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
    unlink(tmp.sun_path);
    close(fd);
    return -1;
  }
  *ino = (unsigned long)st.st_ino;
  return fd;
}

void ts_listen_unlink_unix(const char *path, unsigned long ino) {
  struct stat st;
  if (path[0] && stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (unsigned long)st.st_ino == ino) unlink(path);
}

/* max-connections = auto: raise the soft open-file limit to the hard one
 * (as nginx's worker_rlimit_nofile would), then keep a quarter of it for
 * what is not a client: logs (one per app), modules being compiled, cache
 * files, epoll and event fds. */
int ts_listen_auto_max_connections(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  rlim_t n = rl.rlim_cur == RLIM_INFINITY ? 1048576 : rl.rlim_cur;
  long conns = (long)(n - n / 4);
  return conns < 8 ? 8 : conns > 1000000 ? 1000000 : (int)conns;
}
