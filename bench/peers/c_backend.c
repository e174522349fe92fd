/* The ceiling peer for the server benchmark: the least an HTTP backend can do.
 *
 * Every request (head only, no body support) gets the same fixed keep-alive
 * response as the Wasm guests produce. One epoll loop per thread, each thread
 * with its own SO_REUSEPORT listener, like custom_server's worker count.
 *
 *   c_backend PORT [THREADS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\nhello from wasm\n";

typedef struct {
  int fd;
  size_t len;
  char buf[8192];
} conn;

static int g_port;

static int listener(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1024)) {
    perror("c_backend: listen");
    exit(1);
  }
  return fd;
}

/* Answer every complete request head in the buffer; keep a partial one. */
static int serve(conn *c) {
  size_t off = 0;
  char *end;
  while ((end = memmem(c->buf + off, c->len - off, "\r\n\r\n", 4))) {
    if (write(c->fd, RESPONSE, sizeof RESPONSE - 1) < 0) return -1;
    off = (size_t)(end - c->buf) + 4;
  }
  memmove(c->buf, c->buf + off, c->len - off);
  c->len -= off;
  return c->len == sizeof c->buf ? -1 : 0; /* a head this big is not ours to serve */
}

static void *loop(void *arg) {
  (void)arg;
  int lfd = listener(), ep = epoll_create1(0), one = 1;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[64];
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0 || (c->len += (size_t)r, serve(c) < 0)) {
        close(c->fd);
        free(c);
      }
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: c_backend PORT [THREADS]\n");
    return 2;
  }
  g_port = atoi(argv[1]);
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  pthread_t t;
  for (int i = 1; i < threads; i++) pthread_create(&t, NULL, loop, NULL);
  loop(NULL);
  return 0;
}
