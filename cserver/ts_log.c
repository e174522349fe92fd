#include "ts_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ts_conf.h"
#include "ts_util.h"

#define MAX_APP_LOGS 1024

static char g_dir[TS_PATH_MAX];
static int g_stderr_only = 1;
static int g_error_fd = 2, g_access_fd = -1;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
struct ts_app_log {
  char name[128];
  int fd;
  _Atomic uint64_t bytes; /* size of the current file, as far as we wrote it */
};
static ts_app_log g_apps[MAX_APP_LOGS];
static uint64_t g_app_limit;
static int g_napps;

static int open_append(const char *path) { return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640); }

static int mkdir_p(const char *path) {
  char tmp[TS_PATH_MAX];
  ts_strlcpy(tmp, path, sizeof tmp);
  for (char *p = tmp + 1; *p; p++) {
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0700) && errno != EEXIST) return -1;
      *p = '/';
    }
  }
  if (mkdir(tmp, 0700) && errno != EEXIST) return -1;
  return 0;
}

int ts_log_open(const char *log_dir, char *err, size_t errlen) {
  char path[TS_PATH_MAX + 32];
  if (!log_dir[0] || strcmp(log_dir, "-") == 0) {
    g_stderr_only = 1;
    g_error_fd = 2;
    g_access_fd = 2;
    return 0;
  }
  ts_strlcpy(g_dir, log_dir, sizeof g_dir);
  snprintf(path, sizeof path, "%s/apps", g_dir);
  if (mkdir_p(path)) {
    snprintf(err, errlen, "cannot create log directory %s: %s", path, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "%s/server.log", g_dir);
  int efd = open_append(path);
  if (efd < 0) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "%s/access.log", g_dir);
  int afd = open_append(path);
  if (afd < 0) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    close(efd);
    return -1;
  }
  g_error_fd = efd;
  g_access_fd = afd;
  g_stderr_only = 0;
  return 0;
}

static void reopen_into(int fd, const char *path) {
  int nfd = open_append(path);
  if (nfd < 0) {
    ts_log_error("cannot reopen %s: %s", path, strerror(errno));
    return;
  }
  dup2(nfd, fd); /* atomic replacement: writers never see a closed fd */
  close(nfd);
}

int ts_log_reopen(void) {
  char path[TS_PATH_MAX + 160];
  if (g_stderr_only) return 0;
  pthread_mutex_lock(&g_lock);
  snprintf(path, sizeof path, "%s/apps", g_dir);
  mkdir_p(path);
  snprintf(path, sizeof path, "%s/server.log", g_dir);
  reopen_into(g_error_fd, path);
  snprintf(path, sizeof path, "%s/access.log", g_dir);
  reopen_into(g_access_fd, path);
  for (int i = 0; i < g_napps; i++) {
    snprintf(path, sizeof path, "%s/apps/%s.log", g_dir, g_apps[i].name);
    reopen_into(g_apps[i].fd, path);
  }
  pthread_mutex_unlock(&g_lock);
  ts_log_info("logs reopened");
  return 0;
}

void ts_log(const char *level, const char *fmt, ...) {
  char line[4096];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ [%s] ", ts.tv_nsec / 1000000, level);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  n += m;
  if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
  /* one record per line, whatever the message contained */
  for (int i = 0; i < n; i++)
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  line[n++] = '\n';
  ssize_t w = write(g_error_fd, line, (size_t)n);
  (void)w;
}

void ts_log_access_write(const char *data, size_t n) {
  while (n) {
    ssize_t w = write(g_access_fd, data, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    data += w;
    n -= (size_t)w;
  }
}

static void write_all(int fd, const void *p, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, (const char *)p + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
}

ts_app_log *ts_log_app(const char *app) {
  char path[TS_PATH_MAX + 160];
  if (g_stderr_only) return NULL;
  ts_app_log *found = NULL;
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < g_napps && !found; i++)
    if (strcmp(g_apps[i].name, app) == 0) found = &g_apps[i];
  if (!found && g_napps < MAX_APP_LOGS && strlen(app) < sizeof g_apps[0].name) {
    snprintf(path, sizeof path, "%s/apps/%s.log", g_dir, app);
    int fd = open_append(path);
    if (fd >= 0) {
      ts_app_log *l = &g_apps[g_napps++];
      struct stat st;
      ts_strlcpy(l->name, app, sizeof l->name);
      l->fd = fd;
      atomic_store(&l->bytes, fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0);
      found = l;
    }
  }
  pthread_mutex_unlock(&g_lock);
  return found;
}

void ts_log_set_app_limit(uint64_t bytes) { g_app_limit = bytes; }

/* Rename the full log to .1 and continue in a fresh file under the same fd
 * (dup2: writers in other threads never see a closed descriptor). */
static void rotate(ts_app_log *l) {
  char path[TS_PATH_MAX + 160], old[TS_PATH_MAX + 170];
  pthread_mutex_lock(&g_lock);
  if (atomic_load(&l->bytes) >= g_app_limit) { /* not rotated by another thread meanwhile */
    snprintf(path, sizeof path, "%s/apps/%s.log", g_dir, l->name);
    snprintf(old, sizeof old, "%s.1", path);
    if (rename(path, old) == 0) {
      reopen_into(l->fd, path);
      atomic_store(&l->bytes, 0);
    } else {
      /* cannot rotate: stop growing rather than fill the disk */
      atomic_store(&l->bytes, UINT64_MAX / 2);
    }
  }
  pthread_mutex_unlock(&g_lock);
}

void ts_log_app_write(ts_app_log *l, const void *p, size_t n) {
  if (!l) {
    write_all(2, p, n);
    return;
  }
  if (g_app_limit && n > g_app_limit) n = (size_t)g_app_limit; /* one write never exceeds the limit */
  if (g_app_limit && atomic_load_explicit(&l->bytes, memory_order_relaxed) + n > g_app_limit) {
    rotate(l);
    if (atomic_load(&l->bytes) + n > g_app_limit) return; /* rotation failed: drop */
  }
  write_all(l->fd, p, n);
  atomic_fetch_add_explicit(&l->bytes, n, memory_order_relaxed);
}
