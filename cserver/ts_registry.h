/* Apps and routes: which module version serves a request, and hot swap.
 *
 * Each app has a current ts_version (refcounted). A request takes a reference
 * under the registry lock and drops it when done, so a swap (replace the
 * pointer, drop the registry's reference) never frees a version in use:
 * requests in flight finish on the old module.
 *
 * The watcher thread owns all loading: inotify on the modules directory plus
 * explicit rescans (SIGHUP). Compilation happens there, off the request path.
 */
#ifndef TS_REGISTRY_H
#define TS_REGISTRY_H

#include <stdatomic.h>
#include <sys/types.h>

#include "ts_appmaps.h"
#include "ts_engine.h"
#include "ts_metrics.h"
#include "ts_pool.h"
#include "ts_route.h"

typedef struct ts_version {
  _Atomic int refs;
  wasmtime_module_t *module;
  wasmtime_instance_pre_t *pre;
  struct ts_component *component; /* a WASI 0.2 command component (then module and pre are NULL) */
  char sha256[65];
  double loaded_at;                   /* unix seconds */
  int source;                         /* TS_LOAD_*: compiled, from the cache, or precompiled by deploy */
  wasmtime_instance_pre_t *pre_files; /* the plain-WASI pre-link, for runs with preopened folders */
  char *routes_text;                  /* what its `_routes` export printed (NULL: no such export) */
} ts_version;

/* A release under test: <modules>/.preview/<app>.wasm, compiled like the live
 * module but served only under /_tiramisu/preview/<app>/... to loopback
 * clients that no proxy forwarded (nginx never proxies /_tiramisu/). An
 * optional <modules>/.preview/<app>.routes ("PREFIX APP" lines, the routes
 * file the deploy will write) replaces the live routes for its requests. */
typedef struct ts_preview {
  ts_version *current;  /* NULL until compiled */
  int present;          /* the preview file exists */
  char state[16];       /* active | failed | loading | removed */
  char *error;          /* compile error (malloc'd) or NULL */
  char file_sha256[65]; /* content last seen on disk */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  ts_route *routes; /* malloc'd table from <app>.routes, or NULL: the live routes */
  int nroutes;
} ts_preview;

typedef struct ts_app {
  char name[TS_APP_NAME_MAX + 1];
  ts_version *current;  /* NULL until a version loaded */
  int present;          /* the module file exists */
  char state[16];       /* active | failed | loading | removed */
  char *error;          /* last load error (malloc'd) or NULL */
  char file_sha256[65]; /* content last seen on disk */
  /* change detection without reading the file */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  struct ts_app_log *log; /* guest stderr (NULL: the server's stderr) */
  _Atomic uint64_t requests;
  ts_status_counts status;
  ts_pool_app pool; /* its queue and running guests in the guest pool */
  ts_preview preview;
  unsigned listed_in_scan; /* the last full scan that listed its file (watcher thread) */
} ts_app;

typedef struct {
  ts_app *app;
  ts_version *version; /* referenced: release with ts_version_release */
  char script_name[512];
  char matched_route[512];
  int has_map;          /* an app map route matched: map, info_off and the entry point below apply */
  ts_maphit map;        /* referenced: ts_match_release drops it with the version */
  size_t info_off;      /* X_RAW_PATH_INFO starts here in the path */
  int preview;          /* 1: the app's preview version (m->version) */
  size_t preview_strip; /* bytes of /_tiramisu/preview/<app> before the routed path */
} ts_match;

int ts_registry_init(ts_engine *engine, const ts_config *cfg, char *err, size_t errlen);
/* Scan the modules dir and load everything now (startup), and start the watcher. */
int ts_registry_start(void);
void ts_registry_stop(void);
void ts_registry_request_rescan(void); /* async-signal-safe enough: writes an eventfd */

/* 0 = matched (m filled, version referenced), -1 = no app (404), -2 = app
 * known but has no loaded version (503). */
int ts_registry_route(const char *path, size_t len, ts_match *m);
void ts_version_release(ts_version *v);
/* Drop what a successful ts_registry_route referenced (version and map). */
void ts_match_release(ts_match *m);
/* The preview of an app: path is the whole target path, starting with
 * TS_PREVIEW_PREFIX. The rest after /_tiramisu/preview/<app> is routed as the
 * live server would route it (with the preview's routes when it has them); it
 * must reach <app>. Same return codes as ts_registry_route; m->version is the
 * preview's version. */
#define TS_PREVIEW_PREFIX "/_tiramisu/preview/"
int ts_registry_route_preview(const char *path, size_t len, ts_match *m);

/* For the admin endpoint and metrics. */
int ts_registry_apps_json(ts_buf *b);
/* The same document with only the app named (only, only_len) in "apps" and
 * "previews" (none when there is no such app); only == NULL: every app. A
 * deploy that polls one app of a thousand reads ~1 KB, not ~400 KB. */
int ts_registry_app_json(ts_buf *b, const char *only, size_t only_len);
int ts_registry_metrics(ts_buf *b);

#endif
