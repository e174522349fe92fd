/* custom_server: startup, signals, shutdown.
 *
 * Signals are blocked in every thread and read from a signalfd by the main
 * thread, which does nothing else: handlers never run in the middle of a
 * request, and the reaction (drain, rescan, reopen) happens in normal code.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ts_version.h"
#include "ts_component.h"
#include "ts_conf.h"
#include "ts_engine.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_registry.h"
#include "ts_server.h"
#include "ts_sha256.h"

static ts_config g_cfg;
static ts_engine g_engine;
static _Atomic int g_ticker_stop;

static int die(const char *msg) {
  fprintf(stderr, "custom_server: %s\n", msg);
  return 1;
}

static void *ticker_main(void *arg) {
  ts_engine *e = arg;
  struct timespec ts = {0, TS_EPOCH_TICK_MS * 1000000L};
  while (!atomic_load(&g_ticker_stop)) {
    nanosleep(&ts, NULL);
    ts_engine_tick(e);
    ts_server_watch(); /* inline guests running too long */
  }
  return NULL;
}

static int ensure_dir(const char *path, const char *what, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0 && mkdir(path, 0700) != 0) {
    snprintf(err, errlen, "cannot create %s %s: %s", what, path, strerror(errno));
    return -1;
  }
  if (access(path, W_OK | X_OK) != 0) {
    snprintf(err, errlen, "%s %s is not writable: %s", what, path, strerror(errno));
    return -1;
  }
  return 0;
}

static int write_pid_file(const char *path, char *err, size_t errlen) {
  char tmp[TS_PATH_MAX + 32], text[32];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
  if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write pid file %s: %s", path, strerror(errno));
    if (fd >= 0) unlink(tmp);
    return -1;
  }
  return 0;
}

static int check_module(const ts_config *cfg) {
  char err[1024];
  ts_log_open("-", err, sizeof err);
  if (ts_engine_init(&g_engine, cfg, err, sizeof err)) return die(err);
  if (g_engine.cache_dir[0] && access(g_engine.cache_dir, W_OK) != 0) g_engine.cache_dir[0] = 0;
  FILE *f = fopen(cfg->check_module, "rb");
  if (!f) {
    printf("%s: cannot open: %s\n", cfg->check_module, strerror(errno));
    return 1;
  }
  ts_buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) ts_buf_append(&b, chunk, n);
  fclose(f);
  char sha[65];
  ts_sha256_hex(b.p ? b.p : "", b.n, sha);
  wasmtime_module_t *m;
  wasmtime_instance_pre_t *pre;
  ts_component *component;
  int source;
  if (cfg->precompiled[0] && access(cfg->precompiled, R_OK) != 0) {
    printf("%s: cannot open: %s\n", cfg->precompiled, strerror(errno));
    return 1;
  }
  if (ts_engine_load(&g_engine, (const uint8_t *)(b.p ? b.p : ""), b.n, sha,
                     cfg->precompiled[0] ? cfg->precompiled : NULL, &m, &pre, &component, &source, err, sizeof err)) {
    printf("%s: %s\n", cfg->check_module, err);
    return 1;
  }
  /* "ok <sha256>" first (deploy's contract), then how the code was obtained. */
  printf("ok %s %s%s\n", sha, ts_load_source_name(source), component ? " component" : "");
  return 0;
}

/* Deploy reads this over SSH to precompile with an identical engine. Plans
 * with the same config the running server uses, without creating an engine. */
static int engine_settings(const ts_config *cfg) {
  ts_engine_settings s;
  ts_buf b = {0};
  ts_engine_plan(cfg, &s);
  char abs[TS_PATH_MAX];
  const char *cache = cfg->cache;
  if (cache[0] && cache[0] != '/' && getcwd(abs, sizeof abs)) {
    size_t n = strlen(abs);
    snprintf(abs + n, sizeof abs - n, "/%s", cache);
    cache = abs;
  }
  ts_engine_settings_json(&s, cache, &b);
  printf("%.*s\n", (int)b.n, b.p ? b.p : "");
  ts_buf_free(&b);
  return 0;
}

int main(int argc, char **argv) {
  char err[2048];
  if (ts_config_load(&g_cfg, argc, argv, err, sizeof err)) return die(err) + 1;
  if (g_cfg.show_help) {
    ts_config_help(argv[0]);
    return 0;
  }
  if (g_cfg.show_version) {
    printf("custom_server %s (wasmtime %s)\n", TS_VERSION, TS_WASMTIME_VERSION);
    return 0;
  }
  if (g_cfg.show_engine_settings) return engine_settings(&g_cfg);
  if (g_cfg.check_module[0]) return check_module(&g_cfg);

  /* Before any thread exists, so every thread inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) return die("signalfd failed");

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  if (ts_log_open(g_cfg.log_dir, err, sizeof err)) return die(err);
  ts_log_set_app_limit(g_cfg.max_app_log);
  if (g_cfg.cache[0] && ensure_dir(g_cfg.cache, "cache directory", err, sizeof err)) return die(err);
  if (ts_server_listen(&g_cfg, err, sizeof err)) {
    ts_log_error("%s", err);
    return die(err);
  }
  g_metrics.started_at = ts_wall_time();
  if (ts_engine_init(&g_engine, &g_cfg, err, sizeof err)) {
    ts_log_error("%s", err);
    return die(err);
  }
  g_metrics.pooling_in_use = g_engine.pooling;
  if (ts_registry_init(&g_engine, &g_cfg, err, sizeof err)) {
    ts_log_error("%s", err);
    return die(err);
  }
  if (g_cfg.pid_file[0] && write_pid_file(g_cfg.pid_file, err, sizeof err)) {
    ts_log_error("%s", err);
    return die(err);
  }
  ts_log_info(
      "custom_server %s (wasmtime %s) starting: pid %d, %d worker(s), %d guest thread(s), %s allocator, modules %s",
      TS_VERSION, TS_WASMTIME_VERSION, (int)getpid(), g_cfg.workers, g_cfg.guest_threads,
      g_engine.pooling ? "pooling" : "on-demand", g_cfg.modules);
  pthread_t ticker;
  if (pthread_create(&ticker, NULL, ticker_main, &g_engine)) return die("cannot start the epoch thread");
  if (ts_registry_start()) return die("cannot start the module watcher");
  if (ts_server_start(&g_cfg, &g_engine)) return die("cannot start worker or guest threads");
  ts_log_info("listening on http://%s:%d", g_cfg.listen_host, g_cfg.listen_port);
  if (g_cfg.listen_unix[0]) ts_log_info("listening on unix:%s", g_cfg.listen_unix);

  for (;;) {
    struct signalfd_siginfo si;
    ssize_t n = read(sfd, &si, sizeof si);
    if (n != sizeof si) {
      if (n < 0 && errno == EINTR) continue;
      continue;
    }
    if (si.ssi_signo == SIGHUP) {
      ts_registry_request_rescan();
    } else if (si.ssi_signo == SIGUSR1) {
      ts_log_reopen();
    } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      ts_log_info("%s: draining", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
  }
  ts_server_drain();
  ts_registry_stop();
  atomic_store(&g_ticker_stop, 1);
  pthread_join(ticker, NULL);
  if (g_cfg.pid_file[0]) unlink(g_cfg.pid_file);
  ts_log_info("stopped");
  return 0;
}
