/* Settings: defaults, `name = value` config file, `--name value` flags.
 *
 * Precedence: flag > config file > default. Relative paths in the config file
 * are resolved against the env dir, i.e. the parent of the config file's
 * directory (conf/server.conf -> <env>/); relative paths given as flags are
 * resolved against the working directory. Defaults for paths are relative to
 * the env dir when --config is given, else to the working directory.
 */
#ifndef TS_CONF_H
#define TS_CONF_H

#include <stddef.h>
#include <stdint.h>

#define TS_PATH_MAX 4096

typedef struct {
  char listen_host[256];
  int listen_port;
  char listen_unix[TS_PATH_MAX]; /* "" = no UNIX-domain listener */
  char modules[TS_PATH_MAX];
  char routes[TS_PATH_MAX];   /* "" = none */
  char cache[TS_PATH_MAX];    /* "" = no compiled-module cache */
  char log_dir[TS_PATH_MAX];  /* "-" = everything to stderr */
  char pid_file[TS_PATH_MAX]; /* "" = none */
  char server_name[256];
  int workers;
  int guest_threads;   /* resolved: never 0 after ts_config_load */
  int app_concurrency; /* guests of one app at once; resolved: never 0 after ts_config_load */
  uint64_t app_queue;  /* requests of one app waiting beyond that (then 503) */
  uint64_t timeout_ms;
  uint64_t memory_mb;
  uint64_t max_output;
  uint64_t max_body;
  uint64_t max_header;
  uint64_t max_headers;
  uint64_t max_request_line;
  uint64_t idle_timeout_ms;
  uint64_t drain_timeout_ms;
  int pooling;                  /* TS_POOLING_* */
  uint64_t keep_resident;       /* pooling: bytes of a memory reset by copy, not madvise */
  uint64_t max_response_header; /* bytes of guest response header lines */
  uint64_t max_conn_output;     /* queued response bytes per connection */
  uint64_t max_app_log;         /* bytes of apps/<app>.log before it rotates (0 = no limit) */
  int max_connections;          /* 0 = auto (from the open-file limit, at start) */
  /* command-line only */
  char config_path[TS_PATH_MAX];
  char check_module[TS_PATH_MAX];
  char precompiled[TS_PATH_MAX]; /* with --check-module: a .cwasm to try first */
  int show_help, show_version, show_engine_settings;
} ts_config;

enum { TS_POOLING_AUTO = 0, TS_POOLING_ON = 1, TS_POOLING_OFF = 2 };

/* Fill cfg from argv (and the config file it names). 0, or -1 with a one-line
 * message in err. */
int ts_config_load(ts_config *cfg, int argc, char **argv, char *err, size_t errlen);
void ts_config_help(const char *prog);
const char *ts_pooling_name(int mode);

#endif
