#include "ts_conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ts_util.h"

enum { T_STR, T_PATH, T_INT, T_SIZE, T_MS, T_LISTEN, T_POOLING };

typedef struct {
  const char *name;
  int type;
  const char *def; /* default as text */
  const char *help;
} setting;

static const setting SETTINGS[] = {
    {"listen", T_LISTEN, "127.0.0.1:9000", "HOST:PORT to serve HTTP and the admin endpoints on"},
    {"listen-unix", T_PATH, "",
     "also serve on this UNIX socket path (mode 0600, for a local proxy; '' = none); the same requests as listen"},
    {"modules", T_PATH, "wasm_modules", "directory of <app>.wasm modules (watched)"},
    {"routes", T_PATH, "", "optional routes file: lines 'PREFIX APP' (longest prefix wins)"},
    {"cache", T_PATH, "cache", "directory for compiled modules ('' disables)"},
    {"log-dir", T_PATH, "logs", "server.log, access.log, apps/<app>.log ('-' = stderr)"},
    {"pid-file", T_PATH, "", "write the server's pid here (removed on exit)"},
    {"workers", T_INT, "2", "I/O threads (one event loop each; guests run on guest-threads)"},
    {"guest-threads", T_INT, "auto", "threads running guests, off the event loops (auto = max(4, 2 x workers))"},
    {"app-concurrency", T_INT, "auto", "guests of one app at once, more wait (auto = max(1, guest-threads / 2))"},
    {"app-queue", T_INT, "64", "requests of one app waiting for app-concurrency; beyond -> 503 + Retry-After: 1"},
    {"timeout-ms", T_MS, "10000", "wall-clock limit per request, queued time and WASI waits included (-> 504)"},
    {"memory-mb", T_INT, "128", "linear memory limit per instance (MiB)"},
    {"max-output", T_SIZE, "16m", "largest guest stdout accepted (bytes, k/m/g suffixes)"},
    {"max-body", T_SIZE, "10m", "largest request body (-> 413)"},
    {"max-header", T_SIZE, "16k", "largest request head (-> 431)"},
    {"max-headers", T_INT, "100", "most request header lines (-> 431)"},
    {"max-request-line", T_SIZE, "8k", "longest request line (-> 414)"},
    {"idle-timeout-ms", T_MS, "75000", "close idle connections after this (partial request -> 408)"},
    {"drain-timeout-ms", T_MS, "30000", "on SIGTERM, wait this long for requests in flight"},
    {"pooling", T_POOLING, "auto", "pooling allocator: auto | on | off"},
    {"keep-resident", T_SIZE, "64k",
     "pooling: bytes of an instance's memory kept resident between requests and reset by copying, not madvise "
     "(saves page faults for guests with a large working set, e.g. Go; costs resident memory per warm slot)"},
    {"server-name", T_STR, "localhost", "SERVER_NAME when a request has no Host header"},
    {"max-response-header", T_SIZE, "16k",
     "largest guest response head (header bytes; over it -> 500); nginx's proxy_buffer_size is sized from it"},
    {"max-connections", T_INT, "auto",
     "open client connections at most (auto = the open-file limit less a reserve); at the limit, accepting pauses"},
    {"max-app-log", T_SIZE, "4m",
     "an app's stderr log (logs/apps/<app>.log) is rotated to <app>.log.1 at this size (0 = never)"},
    {"max-conn-output", T_SIZE, "1m",
     "queued response bytes per connection before it stops reading pipelined requests (back-pressure)"},
};
#define NSETTINGS (sizeof SETTINGS / sizeof SETTINGS[0])

const char *ts_pooling_name(int mode) { return mode == TS_POOLING_ON ? "on" : mode == TS_POOLING_OFF ? "off" : "auto"; }

void ts_config_help(const char *prog) {
  printf("usage: %s [--config FILE] [--NAME VALUE ...]\n", prog);
  printf("       %s --check-module FILE [--precompiled CWASM] [--config FILE]\n", prog);
  printf("       %s --engine-settings [--config FILE]   (JSON: what precompiled modules must match)\n", prog);
  printf("       %s --version | --help\n\n", prog);
  printf("Runs WASI command modules per request, CGI-style (WAGI).\n\n");
  printf("Settings (config file: 'name = value' lines, '#' comments; flags override):\n");
  for (size_t i = 0; i < NSETTINGS; i++)
    printf("  --%-18s %s (default: %s)\n", SETTINGS[i].name, SETTINGS[i].help,
           SETTINGS[i].def[0] ? SETTINGS[i].def : "none");
  printf("\nRelative paths in the config file are relative to the env dir (the parent of\n"
         "the config file's directory); relative paths in flags to the working directory.\n"
         "Signals: SIGTERM/SIGINT drain and exit 0, SIGHUP rescans modules and routes,\n"
         "SIGUSR1 reopens logs. Admin: GET /_tiramisu/health, /_tiramisu/apps,\n"
         "/_tiramisu/metrics (answered to loopback clients only). A module in\n"
         "<modules>/.preview/<app>.wasm is served only at /_tiramisu/preview/<app>/PATH\n"
         "(loopback, unproxied), as the live app would serve PATH.\n");
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  if (!*s || !isdigit((unsigned char)*s)) return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return -1;
  uint64_t mul = 1;
  if (*end) {
    char c = (char)tolower((unsigned char)*end);
    if (c == 'k') mul = 1024;
    else if (c == 'm') mul = 1024 * 1024;
    else if (c == 'g') mul = 1024ull * 1024 * 1024;
    else return -1;
    end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end) return -1;
  }
  if (v > UINT64_MAX / mul) return -1;
  *out = v * mul;
  return 0;
}

static void resolve_path(char *dst, const char *value, const char *base) {
  if (!value[0] || value[0] == '/' || strcmp(value, "-") == 0 || !base || !base[0]) {
    ts_strlcpy(dst, value, TS_PATH_MAX);
    return;
  }
  snprintf(dst, TS_PATH_MAX, "%s/%s", base, value);
}

static int apply(ts_config *cfg, const char *name, const char *value, const char *base, char *err, size_t errlen,
                 const char *where) {
  const setting *s = NULL;
  for (size_t i = 0; i < NSETTINGS; i++)
    if (strcmp(SETTINGS[i].name, name) == 0) s = &SETTINGS[i];
  if (!s) {
    snprintf(err, errlen, "%sunknown setting '%s' (see --help)", where, name);
    return -1;
  }
  uint64_t v = 0;
  switch (s->type) {
  case T_INT:
    if ((strcmp(name, "guest-threads") == 0 || strcmp(name, "app-concurrency") == 0 ||
         strcmp(name, "max-connections") == 0) &&
        strcmp(value, "auto") == 0)
      break;
    /* fall through */
  case T_MS:
  case T_SIZE:
    if (parse_u64(value, &v) || (s->type != T_SIZE && strpbrk(value, "kKmMgG"))) {
      snprintf(err, errlen, "%sbad value for %s: '%s' (expected a number%s)", where, name, value,
               s->type == T_SIZE ? ", optionally with k/m/g" : "");
      return -1;
    }
    break;
  default: break;
  }
#define IS(n) (strcmp(name, n) == 0)
  if (IS("listen")) {
    const char *colon = strrchr(value, ':');
    uint64_t port;
    if (!colon || colon == value || parse_u64(colon + 1, &port) || port > 65535 ||
        (size_t)(colon - value) >= sizeof cfg->listen_host) {
      snprintf(err, errlen, "%sbad listen address '%s' (expected HOST:PORT)", where, value);
      return -1;
    }
    memcpy(cfg->listen_host, value, (size_t)(colon - value));
    cfg->listen_host[colon - value] = 0;
    cfg->listen_port = (int)port;
  } else if (IS("listen-unix")) {
    resolve_path(cfg->listen_unix, value, base);
  } else if (IS("modules")) resolve_path(cfg->modules, value, base);
  else if (IS("routes")) resolve_path(cfg->routes, value, base);
  else if (IS("cache")) resolve_path(cfg->cache, value, base);
  else if (IS("log-dir")) resolve_path(cfg->log_dir, value, base);
  else if (IS("pid-file")) resolve_path(cfg->pid_file, value, base);
  else if (IS("server-name")) ts_strlcpy(cfg->server_name, value, sizeof cfg->server_name);
  else if (IS("workers")) {
    if (v < 1 || v > 256) {
      snprintf(err, errlen, "%sworkers must be 1..256, got %s", where, value);
      return -1;
    }
    cfg->workers = (int)v;
  } else if (IS("guest-threads")) {
    if (strcmp(value, "auto") != 0 && (v < 1 || v > 1024)) {
      snprintf(err, errlen, "%sguest-threads must be 1..1024 or auto, got %s", where, value);
      return -1;
    }
    cfg->guest_threads = (int)v; /* 0 = auto, resolved once workers is known */
  } else if (IS("app-concurrency")) {
    if (strcmp(value, "auto") != 0 && (v < 1 || v > 1024)) {
      snprintf(err, errlen, "%sapp-concurrency must be 1..1024 or auto, got %s", where, value);
      return -1;
    }
    cfg->app_concurrency = (int)v; /* 0 = auto, resolved once guest-threads is known */
  } else if (IS("app-queue")) {
    if (v > 1000000) {
      snprintf(err, errlen, "%sapp-queue must be 0..1000000, got %s", where, value);
      return -1;
    }
    cfg->app_queue = v;
  } else if (IS("timeout-ms")) cfg->timeout_ms = v ? v : 1;
  else if (IS("memory-mb")) {
    if (v < 1 || v > 65536) {
      snprintf(err, errlen, "%smemory-mb must be 1..65536, got %s", where, value);
      return -1;
    }
    cfg->memory_mb = v;
  } else if (IS("max-output")) cfg->max_output = v;
  else if (IS("max-body")) cfg->max_body = v;
  else if (IS("max-header")) cfg->max_header = v < 256 ? 256 : v;
  else if (IS("max-headers")) cfg->max_headers = v < 1 ? 1 : v > 10000 ? 10000 : v;
  else if (IS("max-request-line")) cfg->max_request_line = v < 64 ? 64 : v;
  else if (IS("idle-timeout-ms")) cfg->idle_timeout_ms = v ? v : 1;
  else if (IS("drain-timeout-ms")) cfg->drain_timeout_ms = v;
  else if (IS("max-response-header")) cfg->max_response_header = v < 1024 ? 1024 : v;
  else if (IS("max-conn-output")) cfg->max_conn_output = v < 4096 ? 4096 : v;
  else if (IS("max-app-log")) cfg->max_app_log = v;
  else if (IS("max-connections")) {
    if (strcmp(value, "auto") == 0) cfg->max_connections = 0;
    else if (v < 1 || v > 1000000) {
      snprintf(err, errlen, "%smax-connections must be 1..1000000 or auto, got %s", where, value);
      return -1;
    } else cfg->max_connections = (int)v;
  } else if (IS("keep-resident")) {
    if (v > (1ull << 30)) {
      snprintf(err, errlen, "%skeep-resident must be at most 1g, got %s", where, value);
      return -1;
    }
    cfg->keep_resident = v;
  } else if (IS("pooling")) {
    if (strcmp(value, "auto") == 0) cfg->pooling = TS_POOLING_AUTO;
    else if (strcmp(value, "on") == 0) cfg->pooling = TS_POOLING_ON;
    else if (strcmp(value, "off") == 0) cfg->pooling = TS_POOLING_OFF;
    else {
      snprintf(err, errlen, "%spooling must be auto, on or off, got '%s'", where, value);
      return -1;
    }
  }
#undef IS
  return 0;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
  return s;
}

static int load_file(ts_config *cfg, const char *path, const char *base, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
    return -1;
  }
  char line[8192], where[TS_PATH_MAX + 32];
  int lineno = 0, rc = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *s = trim(line);
    if (!*s) continue;
    snprintf(where, sizeof where, "%s:%d: ", path, lineno);
    char *eq = strchr(s, '=');
    if (!eq) {
      snprintf(err, errlen, "%sexpected 'name = value'", where);
      rc = -1;
      break;
    }
    *eq = 0;
    char *name = trim(s), *value = trim(eq + 1);
    size_t vn = strlen(value);
    if (vn >= 2 && ((value[0] == '"' && value[vn - 1] == '"') || (value[0] == '\'' && value[vn - 1] == '\''))) {
      value[vn - 1] = 0;
      value++;
    }
    if (apply(cfg, name, value, base, err, errlen, where)) {
      rc = -1;
      break;
    }
  }
  fclose(f);
  return rc;
}

/* The env dir: parent of the config file's directory, absolute. */
static void env_dir_of(const char *config, char *out) {
  char abs[TS_PATH_MAX];
  if (!realpath(config, abs)) ts_strlcpy(abs, config, sizeof abs);
  char *slash = strrchr(abs, '/');
  if (slash) *slash = 0; /* conf dir */
  slash = strrchr(abs, '/');
  if (slash && slash != abs) *slash = 0;
  else if (slash) slash[1] = 0;
  ts_strlcpy(out, abs, TS_PATH_MAX);
}

int ts_config_load(ts_config *cfg, int argc, char **argv, char *err, size_t errlen) {
  char base[TS_PATH_MAX] = "";
  memset(cfg, 0, sizeof *cfg);
  /* pass 1: --config and the command-only switches */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) cfg->show_help = 1;
    else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) cfg->show_version = 1;
    else if (strcmp(a, "--engine-settings") == 0) cfg->show_engine_settings = 1;
    else if (strncmp(a, "--config=", 9) == 0) ts_strlcpy(cfg->config_path, a + 9, TS_PATH_MAX);
    else if (strcmp(a, "--config") == 0 && i + 1 < argc) ts_strlcpy(cfg->config_path, argv[++i], TS_PATH_MAX);
    else if (strcmp(a, "--config") == 0) {
      snprintf(err, errlen, "--config needs a FILE");
      return -1;
    }
  }
  if (cfg->show_help || cfg->show_version) return 0;
  if (cfg->config_path[0]) env_dir_of(cfg->config_path, base);
  /* defaults (paths relative to the env dir, or the working directory) */
  for (size_t i = 0; i < NSETTINGS; i++)
    if (apply(cfg, SETTINGS[i].name, SETTINGS[i].def, base[0] ? base : NULL, err, errlen, "default: ")) return -1;
  if (cfg->config_path[0]) {
    snprintf(cfg->pid_file, TS_PATH_MAX, "%s/run/custom_server.pid", base);
    if (load_file(cfg, cfg->config_path, base, err, errlen)) return -1;
  }
  /* pass 2: flags */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--engine-settings") == 0) continue;
    if (strncmp(a, "--", 2) != 0) {
      snprintf(err, errlen, "unexpected argument '%s' (settings are --NAME VALUE; see --help)", a);
      return -1;
    }
    char name[128];
    const char *value;
    const char *eq = strchr(a, '=');
    if (eq) {
      size_t n = (size_t)(eq - a - 2);
      if (n >= sizeof name) n = sizeof name - 1;
      memcpy(name, a + 2, n);
      name[n] = 0;
      value = eq + 1;
    } else {
      ts_strlcpy(name, a + 2, sizeof name);
      if (i + 1 >= argc) {
        snprintf(err, errlen, "flag --%s needs a value", name);
        return -1;
      }
      value = argv[++i];
    }
    if (strcmp(name, "config") == 0) continue;
    if (strcmp(name, "check-module") == 0) {
      ts_strlcpy(cfg->check_module, value, TS_PATH_MAX);
      continue;
    }
    if (strcmp(name, "precompiled") == 0) {
      ts_strlcpy(cfg->precompiled, value, TS_PATH_MAX);
      continue;
    }
    if (apply(cfg, name, value, NULL, err, errlen, "")) return -1;
  }
  if (!cfg->guest_threads) cfg->guest_threads = cfg->workers * 2 < 4 ? 4 : cfg->workers * 2;
  /* Half the threads: one app's slow requests always leave the other half to the rest. */
  if (!cfg->app_concurrency) cfg->app_concurrency = cfg->guest_threads / 2 > 1 ? cfg->guest_threads / 2 : 1;
  if (cfg->precompiled[0] && !cfg->check_module[0]) {
    snprintf(err, errlen, "--precompiled goes with --check-module FILE");
    return -1;
  }
  return 0;
}
