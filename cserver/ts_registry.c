#include "ts_registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ts_component.h"
#include "ts_log.h"
#include "ts_sha256.h"

/* Apps are never freed (requests may hold pointers), so a name once seen keeps
 * its slot: room for a thousand live apps and as many come and gone. */
#define MAX_APPS 4096
#define INDEX_SLOTS 8192 /* open addressing, a power of two > 2 * MAX_APPS */
#define MAX_ROUTES 256
#define MAX_MODULE_BYTES (512ull << 20)

static ts_engine *g_engine;
static const ts_config *g_cfg;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static ts_app *g_apps[MAX_APPS]; /* never freed: requests may hold pointers */
static int g_napps;
static ts_app *g_index[INDEX_SLOTS]; /* name -> app, linear probing; filled as apps are created */
static ts_route g_routes[MAX_ROUTES];
static int g_nroutes;
static int g_inotify = -1, g_wd = -1, g_event = -1;
static int g_wd_preview = -1;                /* watch on <modules>/.preview */
static char g_preview_dir[TS_PATH_MAX + 16]; /* "" when previews are unavailable */
static _Atomic int g_stop;
static pthread_t g_thread;
static int g_thread_started;

/* Read the routes file; keep the old table when it is malformed. */
static int load_routes(int startup, char *err, size_t errlen) {
  if (!g_cfg->routes[0]) return 0;
  FILE *f = fopen(g_cfg->routes, "r");
  if (!f) {
    if (errno == ENOENT) {
      pthread_mutex_lock(&g_lock);
      g_nroutes = 0;
      pthread_mutex_unlock(&g_lock);
      return 0;
    }
    snprintf(err, errlen, "cannot read routes file %s: %s", g_cfg->routes, strerror(errno));
    if (!startup) ts_log_error("%s", err);
    return -1;
  }
  ts_buf text = {0};
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) ts_buf_append(&text, chunk, n);
  fclose(f);
  ts_buf_append(&text, "", 1);
  static ts_route tmp[MAX_ROUTES];
  char perr[256];
  int count = ts_routes_parse(text.p, tmp, MAX_ROUTES, perr, sizeof perr);
  ts_buf_free(&text);
  if (count < 0) {
    snprintf(err, errlen, "routes file %s: %s", g_cfg->routes, perr);
    if (!startup) ts_log_error("%s (keeping the previous routes)", err);
    return -1;
  }
  pthread_mutex_lock(&g_lock);
  memcpy(g_routes, tmp, sizeof(ts_route) * (size_t)count);
  g_nroutes = count;
  pthread_mutex_unlock(&g_lock);
  if (!startup) ts_log_info("routes reloaded: %d route(s)", count);
  return 0;
}

/* FNV-1a of the name: the request path and every rescan find an app in O(1),
 * whatever the number of apps. */
static size_t name_slot(const char *name, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)name[i]) * 16777619u;
  return h & (INDEX_SLOTS - 1);
}

static ts_app *find_app_locked(const char *name, size_t n) {
  if (n > TS_APP_NAME_MAX) return NULL;
  for (size_t i = name_slot(name, n);; i = (i + 1) & (INDEX_SLOTS - 1)) {
    ts_app *a = g_index[i];
    if (!a) return NULL;
    if (memcmp(a->name, name, n) == 0 && a->name[n] == 0) return a;
  }
}

static ts_app *get_app_locked(const char *name) {
  size_t n = strlen(name);
  ts_app *a = find_app_locked(name, n);
  if (a) return a;
  if (g_napps >= MAX_APPS) {
    ts_log_error("app %s: more than %d app names seen since the server started (restart it)", name, MAX_APPS);
    return NULL;
  }
  a = calloc(1, sizeof *a);
  if (!a) return NULL;
  ts_strlcpy(a->name, name, sizeof a->name);
  strcpy(a->state, "removed");
  g_apps[g_napps++] = a;
  size_t i = name_slot(name, n);
  while (g_index[i]) i = (i + 1) & (INDEX_SLOTS - 1);
  g_index[i] = a;
  return a;
}

void ts_version_release(ts_version *v) {
  if (!v) return;
  if (atomic_fetch_sub(&v->refs, 1) == 1) {
    if (v->pre_files) wasmtime_instance_pre_delete(v->pre_files);
    free(v->routes_text);
    if (v->pre) wasmtime_instance_pre_delete(v->pre);
    if (v->module) wasmtime_module_delete(v->module);
    ts_component_free(v->component);
    free(v);
  }
}

static void set_error_locked(ts_app *a, const char *msg) {
  free(a->error);
  a->error = msg ? strdup(msg) : NULL;
}

static void remove_app(const char *name) {
  pthread_mutex_lock(&g_lock);
  ts_app *a = find_app_locked(name, strlen(name));
  ts_version *old = NULL;
  if (a && a->present) {
    old = a->current;
    a->current = NULL;
    a->present = 0;
    a->file_sha256[0] = 0;
    a->ino = 0;
    strcpy(a->state, "removed");
    set_error_locked(a, NULL);
  }
  pthread_mutex_unlock(&g_lock);
  if (a && old) ts_log_info("app %s: module removed, no longer routed", name);
  ts_version_release(old);
}

static int read_file(const char *path, ts_buf *b, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  char chunk[65536];
  for (;;) {
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
      close(fd);
      return -1;
    }
    if (r == 0) break;
    if (b->n + (size_t)r > MAX_MODULE_BYTES || ts_buf_append(b, chunk, (size_t)r)) {
      snprintf(err, errlen, "%s is too large", path);
      close(fd);
      return -1;
    }
  }
  close(fd);
  return 0;
}

/* Does the module export `name`? Read from its type: nothing is instantiated. */
static int has_export(const wasmtime_module_t *module, const char *name) {
  wasm_exporttype_vec_t exports = {0, NULL};
  wasmtime_module_exports(module, &exports);
  size_t n = strlen(name);
  int found = 0;
  for (size_t i = 0; i < exports.size && !found; i++) {
    const wasm_name_t *e = wasm_exporttype_name(exports.data[i]);
    found = e && e->size == n && memcmp(e->data, name, n) == 0;
  }
  wasm_exporttype_vec_delete(&exports);
  return found;
}

/* For app maps: a pre-link with plain WASI (folders), and the module's
 * `_routes` output, read once per version (WAGI's dynamic sub-routes). Only a
 * module that exports `_routes` is run for it: with a thousand apps, one
 * instantiation per app at every start was most of the restart's CPU. -1
 * with err when `_routes` fails or prints an invalid table: WAGI refuses to
 * load such a module, so the version fails to load. */
static int module_extras(const char *name, ts_version *v, char *rerr, size_t rerrlen) {
  char err[512];
  if (!v->module) return 0; /* a component: its folders come with its WASI context; no _routes (WASI 0.2) */
  if (ts_engine_prelink_files(g_engine, v->module, &v->pre_files, err, sizeof err)) {
    v->pre_files = NULL;
    ts_log_warn("app %s: no pre-link for preopened folders: %s", name, err);
  }
  if (!has_export(v->module, "_routes")) return 0;
  const char *argv[1] = {"_routes"};
  ts_run_input in = {0};
  in.argv = argv;
  in.argc = 1;
  in.stdin_data = "";
  in.max_output = 1 << 20;
  in.entrypoint = "_routes";
  ts_run_output out;
  memset(&out, 0, sizeof out);
  ts_run_result r = ts_engine_run(g_engine, v->pre, &in, &out);
  int rc = 0;
  if (r == TS_RUN_OK) {
    ts_buf_append(&out.out, "", 1);
    v->routes_text = ts_buf_steal(&out.out, NULL);
    ts_log_info("app %s: _routes printed %zu byte(s)", name, v->routes_text ? strlen(v->routes_text) : 0);
    const char *t = v->routes_text ? v->routes_text : "";
    rc = ts_wroutes_check(t, strlen(t), err, sizeof err);
    if (rc) snprintf(rerr, rerrlen, "invalid _routes output: %s", err);
  } else if (!out.no_entrypoint) {
    snprintf(rerr, rerrlen, "_routes failed: %s", out.message);
    rc = -1;
  }
  ts_buf_free(&out.out);
  return rc;
}

/* Make v (one reference, ours) the app's live version. */
static void install_version(ts_app *a, ts_version *v, const char *sha, uint64_t took_us, int from_preview) {
  pthread_mutex_lock(&g_lock);
  ts_version *old = a->current;
  a->current = v;
  strcpy(a->state, strcmp(a->file_sha256, sha) == 0 ? "active" : "loading");
  set_error_locked(a, NULL);
  pthread_mutex_unlock(&g_lock);
  if (old) atomic_fetch_add(&g_metrics.swaps_total, 1);
  if (from_preview)
    ts_log_info("app %s: %s %.12s (the preview's compiled module)", a->name, old ? "swapped in" : "loaded", sha);
  else
    ts_log_info("app %s: %s %.12s (%s in %.1f ms)", a->name, old ? "swapped in" : "loaded", sha,
                ts_load_source_name(v->source), (double)took_us / 1000.0);
  ts_version_release(old);
}

/* (Re)load one app from its file. Runs on the watcher thread (or at startup). */
static void load_app(const char *name) {
  char path[TS_PATH_MAX + 128], err[1024];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s.wasm", g_cfg->modules, name);
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    remove_app(name);
    return;
  }
  pthread_mutex_lock(&g_lock);
  ts_app *a = get_app_locked(name);
  int unchanged = a && a->present && a->dev == st.st_dev && a->ino == st.st_ino && a->size == st.st_size &&
                  a->mtime.tv_sec == st.st_mtim.tv_sec && a->mtime.tv_nsec == st.st_mtim.tv_nsec;
  pthread_mutex_unlock(&g_lock);
  if (!a || unchanged) return;
  if (!a->log) a->log = ts_log_app(name);

  ts_buf bytes = {0};
  if (read_file(path, &bytes, err, sizeof err)) {
    if (errno == ENOENT) remove_app(name);
    else ts_log_error("app %s: %s", name, err);
    ts_buf_free(&bytes);
    return;
  }
  char sha[65];
  ts_sha256_hex(bytes.p ? bytes.p : "", bytes.n, sha);

  pthread_mutex_lock(&g_lock);
  int same_as_current = a->current && strcmp(a->current->sha256, sha) == 0;
  int same_failed = !a->current && strcmp(a->state, "failed") == 0 && strcmp(a->file_sha256, sha) == 0;
  int same_failed2 = strcmp(a->state, "failed") == 0 && strcmp(a->file_sha256, sha) == 0;
  a->dev = st.st_dev, a->ino = st.st_ino, a->size = st.st_size, a->mtime = st.st_mtim;
  a->present = 1;
  ts_strlcpy(a->file_sha256, sha, sizeof a->file_sha256);
  if (same_as_current) {
    strcpy(a->state, "active");
    set_error_locked(a, NULL);
  } else if (!same_failed && !same_failed2) {
    strcpy(a->state, "loading");
  }
  pthread_mutex_unlock(&g_lock);
  if (same_as_current || same_failed || same_failed2) {
    ts_buf_free(&bytes);
    return;
  }

  /* Promoting a release that passed its preview: the preview's compiled
   * version becomes the live one, nothing is compiled or read again. */
  pthread_mutex_lock(&g_lock);
  ts_version *promoted = a->preview.current && strcmp(a->preview.current->sha256, sha) == 0 ? a->preview.current : NULL;
  if (promoted) atomic_fetch_add(&promoted->refs, 1);
  pthread_mutex_unlock(&g_lock);
  if (promoted) {
    ts_buf_free(&bytes);
    install_version(a, promoted, sha, 0, 1);
    return;
  }

  uint64_t t0 = ts_now_us();
  wasmtime_module_t *module = NULL;
  wasmtime_instance_pre_t *pre = NULL;
  ts_component *component = NULL;
  int source = TS_LOAD_COMPILED;
  int rc = ts_engine_load(g_engine, (const uint8_t *)bytes.p, bytes.n, sha, NULL, &module, &pre, &component, &source,
                          err, sizeof err);
  ts_buf_free(&bytes);
  uint64_t took = ts_now_us() - t0;
  if (rc) {
    atomic_fetch_add(&g_metrics.compile_errors_total, 1);
    pthread_mutex_lock(&g_lock);
    if (strcmp(a->file_sha256, sha) == 0) {
      strcpy(a->state, "failed");
      set_error_locked(a, err);
    }
    int serving = a->current != NULL;
    pthread_mutex_unlock(&g_lock);
    ts_log_error("app %s: module %.12s rejected: %s%s", name, sha, err,
                 serving ? " (the previous version keeps serving)" : "");
    return;
  }
  ts_version *v = calloc(1, sizeof *v);
  if (!v) {
    if (pre) wasmtime_instance_pre_delete(pre);
    if (module) wasmtime_module_delete(module);
    ts_component_free(component);
    return;
  }
  atomic_init(&v->refs, 1);
  v->module = module;
  v->pre = pre;
  v->component = component;
  if (module_extras(name, v, err, sizeof err)) {
    ts_version_release(v);
    pthread_mutex_lock(&g_lock);
    if (strcmp(a->file_sha256, sha) == 0) {
      strcpy(a->state, "failed");
      set_error_locked(a, err);
    }
    int serving = a->current != NULL;
    pthread_mutex_unlock(&g_lock);
    ts_log_error("app %s: module %.12s rejected: %s%s", name, sha, err,
                 serving ? " (the previous version keeps serving)" : "");
    return;
  }
  v->source = source;
  v->loaded_at = ts_wall_time();
  ts_strlcpy(v->sha256, sha, sizeof v->sha256);
  install_version(a, v, sha, took, 0);
}

/* ------------------------------------------------------------ previews --- */

static void set_preview_error_locked(ts_preview *pv, const char *msg) {
  free(pv->error);
  pv->error = msg ? strdup(msg) : NULL;
}

static void remove_preview(const char *name) {
  pthread_mutex_lock(&g_lock);
  ts_app *a = find_app_locked(name, strlen(name));
  ts_version *old = NULL;
  ts_route *routes = NULL;
  int was = a && a->preview.present;
  if (was) {
    ts_preview *pv = &a->preview;
    old = pv->current;
    routes = pv->routes;
    pv->current = NULL;
    pv->routes = NULL;
    pv->nroutes = 0;
    pv->present = 0;
    pv->file_sha256[0] = 0;
    pv->ino = 0;
    strcpy(pv->state, "removed");
    set_preview_error_locked(pv, NULL);
  }
  pthread_mutex_unlock(&g_lock);
  if (was) ts_log_info("app %s: preview removed", name);
  ts_version_release(old);
  free(routes);
}

/* The preview's routes file: a table, or NULL (none: the live routes apply). */
static ts_route *read_preview_routes(const char *name, int *count, char *err, size_t errlen) {
  char path[TS_PATH_MAX + 128];
  snprintf(path, sizeof path, "%s/%s.routes", g_preview_dir, name);
  *count = 0;
  err[0] = 0;
  ts_buf text = {0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  char chunk[4096];
  ssize_t r;
  while ((r = read(fd, chunk, sizeof chunk)) > 0)
    if (text.n + (size_t)r > (1u << 20) || ts_buf_append(&text, chunk, (size_t)r)) break;
  close(fd);
  ts_buf_append(&text, "", 1);
  ts_route *tab = calloc(MAX_ROUTES, sizeof *tab);
  int n = tab ? ts_routes_parse(text.p ? text.p : "", tab, MAX_ROUTES, err, errlen) : -1;
  ts_buf_free(&text);
  if (n < 0) {
    if (!tab) snprintf(err, errlen, "out of memory");
    free(tab);
    return NULL;
  }
  *count = n;
  return tab;
}

/* (Re)load an app's preview from <modules>/.preview/<name>.wasm (watcher thread). */
static void load_preview(const char *name) {
  char path[TS_PATH_MAX + 128], err[1024], rerr[256];
  struct stat st;
  if (!g_preview_dir[0]) return;
  snprintf(path, sizeof path, "%s/%s.wasm", g_preview_dir, name);
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    remove_preview(name);
    return;
  }
  int nroutes = 0;
  ts_route *routes = read_preview_routes(name, &nroutes, rerr, sizeof rerr);
  pthread_mutex_lock(&g_lock);
  ts_app *a = get_app_locked(name);
  if (!a) {
    pthread_mutex_unlock(&g_lock);
    free(routes);
    return;
  }
  ts_preview *pv = &a->preview;
  ts_route *old_routes = pv->routes;
  pv->routes = routes;
  pv->nroutes = nroutes;
  int unchanged = pv->present && pv->dev == st.st_dev && pv->ino == st.st_ino && pv->size == st.st_size &&
                  pv->mtime.tv_sec == st.st_mtim.tv_sec && pv->mtime.tv_nsec == st.st_mtim.tv_nsec;
  pthread_mutex_unlock(&g_lock);
  free(old_routes);
  if (rerr[0]) ts_log_error("app %s: preview routes: %s (the live routes apply)", name, rerr);
  if (unchanged) return;
  if (!a->log) a->log = ts_log_app(name);

  ts_buf bytes = {0};
  if (read_file(path, &bytes, err, sizeof err)) {
    if (errno == ENOENT) remove_preview(name);
    else ts_log_error("app %s: preview: %s", name, err);
    ts_buf_free(&bytes);
    return;
  }
  char sha[65];
  ts_sha256_hex(bytes.p ? bytes.p : "", bytes.n, sha);
  pthread_mutex_lock(&g_lock);
  int same = pv->current && strcmp(pv->current->sha256, sha) == 0;
  int same_failed = strcmp(pv->state, "failed") == 0 && strcmp(pv->file_sha256, sha) == 0;
  /* The live version already has this content: share it. */
  ts_version *shared = !same && a->current && strcmp(a->current->sha256, sha) == 0 ? a->current : NULL;
  if (shared) atomic_fetch_add(&shared->refs, 1);
  pv->dev = st.st_dev, pv->ino = st.st_ino, pv->size = st.st_size, pv->mtime = st.st_mtim;
  pv->present = 1;
  ts_strlcpy(pv->file_sha256, sha, sizeof pv->file_sha256);
  if (same) {
    strcpy(pv->state, "active");
    set_preview_error_locked(pv, NULL);
  } else if (!same_failed) {
    strcpy(pv->state, "loading");
  }
  pthread_mutex_unlock(&g_lock);
  if (same || same_failed) {
    ts_buf_free(&bytes);
    return;
  }
  ts_version *v = shared;
  uint64_t t0 = ts_now_us();
  if (!v) {
    wasmtime_module_t *module = NULL;
    wasmtime_instance_pre_t *pre = NULL;
    ts_component *component = NULL;
    int source = TS_LOAD_COMPILED;
    int rc = ts_engine_load(g_engine, (const uint8_t *)bytes.p, bytes.n, sha, NULL, &module, &pre, &component, &source,
                            err, sizeof err);
    if (rc) {
      ts_buf_free(&bytes);
      atomic_fetch_add(&g_metrics.compile_errors_total, 1);
      pthread_mutex_lock(&g_lock);
      if (strcmp(pv->file_sha256, sha) == 0) {
        strcpy(pv->state, "failed");
        set_preview_error_locked(pv, err);
      }
      pthread_mutex_unlock(&g_lock);
      ts_log_error("app %s: preview %.12s rejected: %s", name, sha, err);
      return;
    }
    v = calloc(1, sizeof *v);
    if (!v) {
      ts_buf_free(&bytes);
      if (pre) wasmtime_instance_pre_delete(pre);
      if (module) wasmtime_module_delete(module);
      ts_component_free(component);
      return;
    }
    atomic_init(&v->refs, 1);
    v->module = module;
    v->pre = pre;
    v->component = component;
    if (module_extras(name, v, err, sizeof err)) { /* it may become the live version as it is */
      ts_buf_free(&bytes);
      ts_version_release(v);
      pthread_mutex_lock(&g_lock);
      if (strcmp(pv->file_sha256, sha) == 0) {
        strcpy(pv->state, "failed");
        set_preview_error_locked(pv, err);
      }
      pthread_mutex_unlock(&g_lock);
      ts_log_error("app %s: preview %.12s rejected: %s", name, sha, err);
      return;
    }
    v->source = source;
    v->loaded_at = ts_wall_time();
    ts_strlcpy(v->sha256, sha, sizeof v->sha256);
  }
  ts_buf_free(&bytes);
  pthread_mutex_lock(&g_lock);
  ts_version *old = pv->current;
  pv->current = v;
  strcpy(pv->state, strcmp(pv->file_sha256, sha) == 0 ? "active" : "loading");
  set_preview_error_locked(pv, NULL);
  pthread_mutex_unlock(&g_lock);
  ts_log_info("app %s: preview %.12s ready (%s in %.1f ms)", name, sha,
              shared ? "the live module" : ts_load_source_name(v->source), (double)(ts_now_us() - t0) / 1000.0);
  ts_version_release(old);
}

/* "<app>.routes" in the preview folder: the app's name, or 0. */
static int routes_name(const char *file, char *name) {
  size_t n = strlen(file);
  if (n < 8 || strcmp(file + n - 7, ".routes") != 0) return 0;
  if (!ts_app_name_valid(file, n - 7)) return 0;
  memcpy(name, file, n - 7);
  name[n - 7] = 0;
  return 1;
}

static int wasm_name(const char *file, char *name) {
  size_t n = strlen(file);
  if (n < 6 || strcmp(file + n - 5, ".wasm") != 0) return 0;
  if (!ts_app_name_valid(file, n - 5)) return 0;
  memcpy(name, file, n - 5);
  name[n - 5] = 0;
  return 1;
}

static void scan_previews(void) {
  if (!g_preview_dir[0]) return;
  ts_appmaps_scan_previews(g_cfg->modules, g_preview_dir);
  DIR *d = opendir(g_preview_dir);
  char name[TS_APP_NAME_MAX + 1];
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)))
      if (wasm_name(de->d_name, name)) load_preview(name);
    closedir(d);
  }
  char gone[64][TS_APP_NAME_MAX + 1];
  int ngone = 0;
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < g_napps && ngone < 64; i++) {
    char path[TS_PATH_MAX + 128];
    struct stat st;
    if (!g_apps[i]->preview.present) continue;
    snprintf(path, sizeof path, "%s/%s.wasm", g_preview_dir, g_apps[i]->name);
    if (stat(path, &st) != 0) ts_strlcpy(gone[ngone++], g_apps[i]->name, TS_APP_NAME_MAX + 1);
  }
  pthread_mutex_unlock(&g_lock);
  for (int i = 0; i < ngone; i++) remove_preview(gone[i]);
}

static void scan_all(void) {
  ts_appmaps_scan(g_cfg->modules);
  DIR *d = opendir(g_cfg->modules);
  if (!d) {
    ts_log_error("cannot read modules directory %s: %s", g_cfg->modules, strerror(errno));
    return;
  }
  /* One stat per module file (in load_app) and none for the rest: an app is
   * gone when this pass did not list its file. */
  static unsigned scan; /* the watcher thread's (and startup's) alone */
  scan++;
  struct dirent *de;
  char name[TS_APP_NAME_MAX + 1];
  while ((de = readdir(d))) {
    if (!wasm_name(de->d_name, name)) continue;
    load_app(name);
    pthread_mutex_lock(&g_lock);
    ts_app *a = find_app_locked(name, strlen(name));
    if (a) a->listed_in_scan = scan;
    pthread_mutex_unlock(&g_lock);
  }
  closedir(d);
  /* apps whose file disappeared while nobody was watching (load_app checks again) */
  for (int i = 0; i < g_napps; i++) {
    pthread_mutex_lock(&g_lock);
    char gone[TS_APP_NAME_MAX + 1];
    int drop = g_apps[i]->listed_in_scan != scan && g_apps[i]->present;
    if (drop) ts_strlcpy(gone, g_apps[i]->name, sizeof gone);
    pthread_mutex_unlock(&g_lock);
    if (drop) load_app(gone); /* its stat fails: removed (or it came back: loaded) */
  }
  scan_previews();
}

static void add_watch(void) {
  g_wd = inotify_add_watch(g_inotify, g_cfg->modules,
                           IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB |
                               IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
  if (g_wd < 0) ts_log_error("cannot watch %s: %s (retrying)", g_cfg->modules, strerror(errno));
}

/* The preview folder: created when missing (it lives inside the modules
 * folder, which we may write), then watched like the modules folder. */
static void add_preview_watch(void) {
  if (!g_preview_dir[0]) return;
  if (mkdir(g_preview_dir, 0700) != 0 && errno != EEXIST) {
    ts_log_warn("cannot create %s: %s (no previews)", g_preview_dir, strerror(errno));
    g_preview_dir[0] = 0;
    return;
  }
  g_wd_preview = inotify_add_watch(g_inotify, g_preview_dir,
                                   IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB |
                                       IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
  if (g_wd_preview < 0) ts_log_error("cannot watch %s: %s (retrying)", g_preview_dir, strerror(errno));
}

static void *watcher_main(void *arg) {
  (void)arg;
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  while (!atomic_load(&g_stop)) {
    struct pollfd pfd[2] = {{g_inotify, POLLIN, 0}, {g_event, POLLIN, 0}};
    int r = poll(pfd, 2, 1000);
    if (atomic_load(&g_stop)) break;
    if (g_wd < 0) { /* directory was gone or replaced: watch again and catch up */
      add_watch();
      if (g_wd >= 0) scan_all();
    }
    if (g_wd >= 0 && g_wd_preview < 0 && g_preview_dir[0]) {
      add_preview_watch();
      if (g_wd_preview >= 0) scan_previews();
    }
    if (r <= 0) continue;
    if (pfd[1].revents & POLLIN) {
      uint64_t v;
      if (read(g_event, &v, sizeof v) > 0) {
        char err[512];
        ts_log_info("rescanning %s", g_cfg->modules);
        load_routes(0, err, sizeof err);
        scan_all();
      }
    }
    if (!(pfd[0].revents & POLLIN)) continue;
    ssize_t n = read(g_inotify, buf, sizeof buf);
    if (n <= 0) continue;
    /* Collect distinct names first: one rename produces several events. */
    char names[64][TS_APP_NAME_MAX + 1];
    int previews[64];
    int nn = 0, rescan = 0;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      p += sizeof *ev + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) rescan = 1;
      if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        if (ev->wd == g_wd) {
          inotify_rm_watch(g_inotify, g_wd);
          g_wd = -1;
        }
        if (ev->wd == g_wd_preview) {
          inotify_rm_watch(g_inotify, g_wd_preview);
          g_wd_preview = -1;
        }
        continue;
      }
      int preview = g_wd_preview >= 0 && ev->wd == g_wd_preview;
      char name[TS_APP_NAME_MAX + 1];
      if (ev->len && ts_appmaps_is_map_file(ev->name, name)) {
        if (!((ev->mask & IN_CREATE) && !(ev->mask & IN_ISDIR))) {
          if (preview) ts_appmaps_load_preview(g_cfg->modules, g_preview_dir, name);
          else ts_appmaps_load(g_cfg->modules, name);
        }
        continue;
      }
      if (!ev->len) continue;
      /* In the preview folder "<app>.routes" counts too: it is re-read
       * whenever that preview is loaded. */
      if (!wasm_name(ev->name, name) && !(preview && routes_name(ev->name, name))) continue;
      /* A regular file being created is loaded on IN_CLOSE_WRITE, not half-written. */
      if ((ev->mask & IN_CREATE) && !(ev->mask & IN_ISDIR)) {
        char path[TS_PATH_MAX + 128];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", preview ? g_preview_dir : g_cfg->modules, ev->name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) continue;
      }
      int dup = 0;
      for (int i = 0; i < nn; i++)
        if (previews[i] == preview && strcmp(names[i], name) == 0) dup = 1;
      if (!dup && nn < 64) {
        previews[nn] = preview;
        ts_strlcpy(names[nn++], name, sizeof names[0]);
      } else if (!dup) rescan = 1;
    }
    if (rescan) scan_all();
    else {
      /* Live modules first: a preview moved into place is promoted before its slot goes. */
      for (int i = 0; i < nn; i++)
        if (!previews[i]) load_app(names[i]);
      for (int i = 0; i < nn; i++)
        if (previews[i]) load_preview(names[i]);
    }
  }
  return NULL;
}

int ts_registry_init(ts_engine *engine, const ts_config *cfg, char *err, size_t errlen) {
  g_engine = engine;
  g_cfg = cfg;
  struct stat st;
  if (stat(cfg->modules, &st) != 0) {
    if (mkdir(cfg->modules, 0700) != 0) {
      snprintf(err, errlen, "cannot create modules directory %s: %s", cfg->modules, strerror(errno));
      return -1;
    }
  } else if (!S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "modules path %s is not a directory", cfg->modules);
    return -1;
  }
  if (access(cfg->modules, R_OK | X_OK) != 0) {
    snprintf(err, errlen, "cannot read modules directory %s: %s", cfg->modules, strerror(errno));
    return -1;
  }
  if (load_routes(1, err, errlen)) return -1;
  g_inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  g_event = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (g_inotify < 0 || g_event < 0) {
    snprintf(err, errlen, "inotify/eventfd: %s", strerror(errno));
    return -1;
  }
  add_watch();
  if (snprintf(g_preview_dir, sizeof g_preview_dir, "%s/.preview", cfg->modules) >= (int)sizeof g_preview_dir)
    g_preview_dir[0] = 0;
  add_preview_watch();
  return 0;
}

int ts_registry_start(void) {
  scan_all(); /* load everything before serving */
  if (pthread_create(&g_thread, NULL, watcher_main, NULL) != 0) return -1;
  g_thread_started = 1;
  return 0;
}

void ts_registry_stop(void) {
  atomic_store(&g_stop, 1);
  ts_registry_request_rescan();
  if (g_thread_started) pthread_join(g_thread, NULL);
  g_thread_started = 0;
}

void ts_registry_request_rescan(void) {
  uint64_t one = 1;
  ssize_t w = write(g_event, &one, sizeof one);
  (void)w;
}

/* The current `_routes` output of a module (g_lock held). */
static const char *dyn_routes_locked(const char *module, const char **sha) {
  ts_app *a = find_app_locked(module, strlen(module));
  if (!a || !a->present || !a->current) return NULL;
  *sha = a->current->sha256;
  return a->current->routes_text;
}

void ts_match_release(ts_match *m) {
  ts_version_release(m->version);
  m->version = NULL;
  if (m->has_map) ts_mapset_release(m->map.set);
  m->has_map = 0;
}

/* An app map route for path (g_lock held): 0 matched (m filled, version and
 * map referenced), -1/-2 as ts_registry_route (nothing referenced), 1 no map
 * route applies (or a routes-file prefix or /<app> is longer). */
static int map_route_locked(const char *path, size_t len, ts_match *m) {
  if (!ts_appmaps_match(path, len, dyn_routes_locked, &m->map)) return 1;
  /* A map route wins over the routes file and /<app> unless one of those is a longer prefix. */
  size_t base = strlen(m->map.pat.base);
  int beaten = 0;
  for (int i = 0; i < g_nroutes && !beaten; i++)
    if (ts_route_prefix_match(g_routes[i].prefix, path, len) && strlen(g_routes[i].prefix) > base) beaten = 1;
  if (len > 1 && path[0] == '/' && !beaten && m->map.pat.wildcard) {
    size_t seg = 1;
    while (seg < len && path[seg] != '/') seg++;
    ts_app *a = find_app_locked(path + 1, seg - 1);
    if (a && a->present && seg > base && !ts_appmaps_owns_module(path + 1, seg - 1)) beaten = 1;
  }
  if (beaten) {
    ts_mapset_release(m->map.set);
    return 1;
  }
  ts_app *a = find_app_locked(m->map.route.module, strlen(m->map.route.module));
  ts_wpattern_text(&m->map.pat, m->matched_route, sizeof m->matched_route);
  ts_wpattern_split(&m->map.pat, path, len, m->script_name, sizeof m->script_name, &m->info_off);
  m->app = a;
  m->version = a && a->present ? a->current : NULL;
  if (m->version) atomic_fetch_add(&m->version->refs, 1);
  int rc = !a || !a->present ? -1 : m->version ? 0 : -2;
  if (rc == 0) {
    m->has_map = 1;
    return 0;
  }
  if (rc == -1) ts_log_warn("map route %s: module %s is not loaded", m->matched_route, m->map.route.module);
  ts_mapset_release(m->map.set);
  if (!a) m->app = NULL;
  return rc;
}

/* Which app a path reaches with this routes table (sorted longest first) and
 * the implicit /<app> routes; fills script_name and matched_route. `extra` is
 * an app that counts as present for its implicit route (a preview's own). */
static ts_app *resolve_locked(const ts_route *routes, int nroutes, const char *path, size_t len, const ts_app *extra,
                              ts_match *m) {
  const ts_route *best = NULL;
  size_t best_len = 0;
  for (int i = 0; i < nroutes; i++) {
    if (ts_route_prefix_match(routes[i].prefix, path, len)) { /* the first match is the longest */
      best = &routes[i];
      best_len = strlen(routes[i].prefix);
      break;
    }
  }
  ts_app *app = NULL;
  if (len > 1 && path[0] == '/') {
    size_t seg = 1;
    while (seg < len && path[seg] != '/') seg++;
    ts_app *a = find_app_locked(path + 1, seg - 1);
    /* modules of app maps have no /<module> route of their own */
    if (a && (a->present || a == extra) && seg > best_len && !ts_appmaps_owns_module(path + 1, seg - 1)) {
      app = a;
      snprintf(m->script_name, sizeof m->script_name, "%.*s", (int)seg, path);
      ts_strlcpy(m->matched_route, m->script_name, sizeof m->matched_route);
    }
  }
  if (!app && best) {
    app = find_app_locked(best->app, strlen(best->app));
    if (app && !app->present && app != extra) app = NULL;
    size_t pl = strlen(best->prefix);
    while (pl && best->prefix[pl - 1] == '/') pl--; /* SCRIPT_NAME has no trailing slash */
    snprintf(m->script_name, sizeof m->script_name, "%.*s", (int)pl, best->prefix);
    ts_strlcpy(m->matched_route, best->prefix, sizeof m->matched_route);
  }
  return app;
}

int ts_registry_route(const char *path, size_t len, ts_match *m) {
  int rc = -1;
  m->preview = 0;
  m->preview_strip = 0;
  m->has_map = 0;
  pthread_mutex_lock(&g_lock);
  int mr = map_route_locked(path, len, m);
  if (mr != 1) {
    pthread_mutex_unlock(&g_lock);
    return mr;
  }
  ts_app *app = resolve_locked(g_routes, g_nroutes, path, len, NULL, m);
  if (app) {
    m->app = app;
    m->version = app->current;
    if (m->version) {
      atomic_fetch_add(&m->version->refs, 1);
      rc = 0;
    } else {
      rc = -2;
    }
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

/* A module's version as an app map's preview runs it (g_lock held): its
 * preview when it has one, else the live version. */
static ts_version *preview_version_locked(ts_app *a) {
  if (!a) return NULL;
  if (a->preview.present) return a->preview.current;
  return a->present ? a->current : NULL;
}

static const char *dyn_preview_routes_locked(const char *module, const char **sha) {
  ts_version *v = preview_version_locked(find_app_locked(module, strlen(module)));
  if (!v) return NULL;
  *sha = v->sha256;
  return v->routes_text;
}

/* A route of app's preview map for the routed path (g_lock held): as
 * ts_registry_route_preview. The routes file and /<app> do not apply. */
static int preview_map_route_locked(const char *app, size_t app_n, const char *path, size_t len, ts_match *m) {
  if (!ts_appmaps_match_preview(app, app_n, path, len, dyn_preview_routes_locked, &m->map)) return -1;
  ts_app *a = find_app_locked(m->map.route.module, strlen(m->map.route.module));
  m->app = a;
  m->version = preview_version_locked(a);
  if (!a || !m->version) {
    ts_mapset_release(m->map.set);
    return a ? -2 : -1;
  }
  atomic_fetch_add(&m->version->refs, 1);
  ts_wpattern_text(&m->map.pat, m->matched_route, sizeof m->matched_route);
  ts_wpattern_split(&m->map.pat, path, len, m->script_name, sizeof m->script_name, &m->info_off);
  m->has_map = 1;
  return 0;
}

int ts_registry_route_preview(const char *path, size_t len, ts_match *m) {
  size_t pl = strlen(TS_PREVIEW_PREFIX);
  m->has_map = 0;
  if (len <= pl || memcmp(path, TS_PREVIEW_PREFIX, pl) != 0) return -1;
  size_t seg = pl;
  while (seg < len && path[seg] != '/') seg++;
  const char *name = path + pl, *rest = path + seg;
  size_t nlen = seg - pl, rlen = len - seg;
  if (!rlen) rest = "/", rlen = 1; /* /_tiramisu/preview/<app> is the path "/" */
  int rc = -1;
  m->preview = 1;
  m->preview_strip = seg;
  pthread_mutex_lock(&g_lock);
  if (ts_appmaps_has_preview(name, nlen)) { /* an app map under test: its own map only */
    rc = preview_map_route_locked(name, nlen, rest, rlen, m);
    pthread_mutex_unlock(&g_lock);
    return rc;
  }
  ts_app *own = find_app_locked(name, nlen);
  if (own && own->preview.present) {
    const ts_preview *pv = &own->preview;
    ts_app *app = pv->routes ? resolve_locked(pv->routes, pv->nroutes, rest, rlen, own, m)
                             : resolve_locked(g_routes, g_nroutes, rest, rlen, own, m);
    if (app == own) { /* any other app: 404, as the live server would not run this one */
      m->app = own;
      m->version = pv->current;
      if (m->version) {
        atomic_fetch_add(&m->version->refs, 1);
        rc = 0;
      } else {
        rc = -2;
      }
    }
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

static void json_str(ts_buf *b, const char *s) { ts_buf_json_str(b, s); }

static void iso_time(double t, char *out, size_t n) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + k, n - k, ".%03dZ", (int)((t - (double)s) * 1000));
}

int ts_registry_apps_json(ts_buf *b) { return ts_registry_app_json(b, NULL, 0); }

/* Does app a pass the filter (only == NULL: every app)? */
static int wanted(const ts_app *a, const char *only, size_t n) {
  return !only || (strlen(a->name) == n && memcmp(a->name, only, n) == 0);
}

int ts_registry_app_json(ts_buf *b, const char *only, size_t only_len) {
  pthread_mutex_lock(&g_lock);
  ts_buf_puts(b, "{\"apps\":[");
  int first = 1;
  for (int i = 0; i < g_napps; i++) {
    ts_app *a = g_apps[i];
    if (!a->present || !wanted(a, only, only_len)) continue;
    if (!first) ts_buf_puts(b, ",");
    first = 0;
    ts_buf_puts(b, "{\"name\":");
    json_str(b, a->name);
    ts_buf_puts(b, ",\"sha256\":");
    if (a->current) json_str(b, a->current->sha256);
    else ts_buf_puts(b, "null");
    ts_buf_puts(b, ",\"file_sha256\":");
    json_str(b, a->file_sha256);
    ts_buf_puts(b, ",\"failed_sha256\":"); /* what deploy waits on when a module is rejected */
    if (strcmp(a->state, "failed") == 0) json_str(b, a->file_sha256);
    else ts_buf_puts(b, "null");
    ts_buf_puts(b, ",\"loaded_at\":");
    if (a->current) {
      char t[64];
      iso_time(a->current->loaded_at, t, sizeof t);
      json_str(b, t);
      ts_buf_printf(b, ",\"loaded_at_unix\":%.3f,\"from_cache\":%s,\"code\":\"%s\"", a->current->loaded_at,
                    a->current->source == TS_LOAD_CACHE ? "true" : "false",
                    a->current->source == TS_LOAD_CACHE         ? "cache"
                    : a->current->source == TS_LOAD_PRECOMPILED ? "precompiled"
                                                                : "compiled");
      ts_buf_printf(b, ",\"kind\":\"%s\"", a->current->component ? "component" : "module");
    } else {
      ts_buf_puts(b, "null,\"loaded_at_unix\":null,\"from_cache\":false,\"code\":null");
    }
    ts_buf_puts(b, ",\"state\":");
    json_str(b, a->state);
    ts_buf_puts(b, ",\"error\":");
    if (a->error) json_str(b, a->error);
    else ts_buf_puts(b, "null");
    ts_buf_printf(b, ",\"requests\":%llu,\"queued\":%d,\"running\":%d,\"rejected\":%llu}",
                  (unsigned long long)atomic_load(&a->requests), atomic_load(&a->pool.queued_now),
                  atomic_load(&a->pool.running_now), (unsigned long long)atomic_load(&a->pool.rejected_total));
  }
  ts_buf_puts(b, "],\"previews\":[");
  first = 1;
  for (int i = 0; i < g_napps; i++) {
    const ts_preview *pv = &g_apps[i]->preview;
    if (!pv->present || !wanted(g_apps[i], only, only_len)) continue;
    if (!first) ts_buf_puts(b, ",");
    first = 0;
    ts_buf_puts(b, "{\"name\":");
    json_str(b, g_apps[i]->name);
    ts_buf_puts(b, ",\"path\":");
    char p[TS_APP_NAME_MAX + 32];
    snprintf(p, sizeof p, "%s%s/", TS_PREVIEW_PREFIX, g_apps[i]->name);
    json_str(b, p);
    ts_buf_puts(b, ",\"sha256\":");
    if (pv->current) json_str(b, pv->current->sha256);
    else ts_buf_puts(b, "null");
    ts_buf_puts(b, ",\"file_sha256\":");
    json_str(b, pv->file_sha256);
    ts_buf_puts(b, ",\"failed_sha256\":");
    if (strcmp(pv->state, "failed") == 0) json_str(b, pv->file_sha256);
    else ts_buf_puts(b, "null");
    ts_buf_puts(b, ",\"state\":");
    json_str(b, pv->state);
    ts_buf_puts(b, ",\"error\":");
    if (pv->error) json_str(b, pv->error);
    else ts_buf_puts(b, "null");
    ts_buf_puts(b, ",\"own_routes\":"); /* routes from <app>.routes, or null: the live ones */
    if (pv->routes) ts_buf_printf(b, "%d", pv->nroutes);
    else ts_buf_puts(b, "null");
    ts_buf_puts(b, ",\"code\":");
    if (pv->current)
      json_str(b, pv->current->source == TS_LOAD_CACHE         ? "cache"
                  : pv->current->source == TS_LOAD_PRECOMPILED ? "precompiled"
                                                               : "compiled");
    else ts_buf_puts(b, "null");
    ts_buf_puts(b, "}");
  }
  ts_buf_puts(b, "],\"preview_maps\":");
  ts_appmaps_previews_json(b);
  ts_buf_puts(b, ",\"maps\":");
  ts_appmaps_live_json(b);
  ts_buf_puts(b, ",\"routes\":[");
  for (int i = 0; i < g_nroutes; i++) {
    if (i) ts_buf_puts(b, ",");
    ts_buf_puts(b, "{\"prefix\":");
    json_str(b, g_routes[i].prefix);
    ts_buf_puts(b, ",\"app\":");
    json_str(b, g_routes[i].app);
    ts_buf_puts(b, "}");
  }
  ts_buf_puts(b, "]");
  pthread_mutex_unlock(&g_lock);
  return 0;
}

int ts_registry_metrics(ts_buf *b) {
  int active = 0;
  pthread_mutex_lock(&g_lock);
  ts_buf_puts(b, "# HELP tiramisu_requests_total Requests answered, by app and status.\n"
                 "# TYPE tiramisu_requests_total counter\n");
  for (int i = 0; i < g_napps; i++) {
    ts_metrics_write_status(b, g_apps[i]->name, &g_apps[i]->status);
    if (g_apps[i]->present && g_apps[i]->current) active++;
  }
  /* The guest pool per app: waiting (queue depth), running, refused (503). */
  static const char *const pool_help = "# HELP tiramisu_app_queued Requests of the app waiting for a guest thread.\n"
                                       "# TYPE tiramisu_app_queued gauge\n";
  ts_buf_puts(b, pool_help);
  for (int i = 0; i < g_napps; i++)
    ts_buf_printf(b, "tiramisu_app_queued{app=\"%s\"} %d\n", g_apps[i]->name,
                  atomic_load_explicit(&g_apps[i]->pool.queued_now, memory_order_relaxed));
  ts_buf_puts(b, "# HELP tiramisu_app_running Guests of the app running now.\n"
                 "# TYPE tiramisu_app_running gauge\n");
  for (int i = 0; i < g_napps; i++)
    ts_buf_printf(b, "tiramisu_app_running{app=\"%s\"} %d\n", g_apps[i]->name,
                  atomic_load_explicit(&g_apps[i]->pool.running_now, memory_order_relaxed));
  ts_buf_puts(b, "# HELP tiramisu_app_rejected_total Requests answered 503 because the app's queue was full.\n"
                 "# TYPE tiramisu_app_rejected_total counter\n");
  for (int i = 0; i < g_napps; i++)
    ts_buf_printf(b, "tiramisu_app_rejected_total{app=\"%s\"} %llu\n", g_apps[i]->name,
                  (unsigned long long)atomic_load_explicit(&g_apps[i]->pool.rejected_total, memory_order_relaxed));
  pthread_mutex_unlock(&g_lock);
  ts_metrics_write_status(b, "", &g_metrics.other);
  ts_buf_printf(b, "# TYPE tiramisu_apps_loaded gauge\ntiramisu_apps_loaded %d\n", active);
  return 0;
}
