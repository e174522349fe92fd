/* App maps on disk (see ts_appmaps.h). */
#include "ts_appmaps.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_log.h"
#include "ts_route.h"
#include "ts_sha256.h"
#include "ts_util.h"

#define MAX_MAPS 256
#define MAX_MAP_BYTES (1u << 20)
#define MAX_SECRETS 64

struct ts_mapset {
  _Atomic int refs;
  char app[TS_APP_NAME_MAX + 1];
  ts_appmap map;
  ts_maproute routes[TS_APPMAP_MAX_ROUTES];
  /* per route: names/values (app env, route env, secrets) and preopens */
  const char **env_names[TS_APPMAP_MAX_ROUTES], **env_values[TS_APPMAP_MAX_ROUTES];
  ts_preopen *preopens[TS_APPMAP_MAX_ROUTES];
  char *hosts[TS_APPMAP_MAX_DIRS]; /* absolute host paths */
  int nsecrets;
  char *secret_names[MAX_SECRETS], *secret_values[MAX_SECRETS];
  /* the `_routes` sub-routes of each route, for the module version dyn_sha */
  ts_wentry *dyn[TS_APPMAP_MAX_ROUTES];
  int ndyn[TS_APPMAP_MAX_ROUTES];
  char dyn_sha[TS_APPMAP_MAX_ROUTES][65];
  char file_sha256[65]; /* of the map file's text: deploy waits on a preview map by it */
};

/* A preview map (<modules>/.preview/<app>.map): the last file seen, and its set
 * when it loaded (NULL with error set when it was rejected). */
typedef struct {
  char app[TS_APP_NAME_MAX + 1];
  char file_sha256[65];
  char error[512];
  ts_mapset *set;
} preview_map;

static pthread_mutex_t g_maps_lock = PTHREAD_MUTEX_INITIALIZER;
static ts_mapset *g_maps[MAX_MAPS];
static int g_nmaps;
static preview_map g_pmaps[MAX_MAPS];
static int g_npmaps;

int ts_appmaps_is_map_file(const char *file, char *app) {
  size_t n = strlen(file);
  if (n < 5 || strcmp(file + n - 4, ".map") != 0 || !ts_app_name_valid(file, n - 4)) return 0;
  memcpy(app, file, n - 4);
  app[n - 4] = 0;
  return 1;
}

static void set_free(ts_mapset *s) {
  for (int r = 0; r < TS_APPMAP_MAX_ROUTES; r++) {
    free(s->env_names[r]);
    free(s->env_values[r]);
    free(s->preopens[r]);
    free(s->dyn[r]);
  }
  for (int i = 0; i < TS_APPMAP_MAX_DIRS; i++) free(s->hosts[i]);
  for (int i = 0; i < s->nsecrets; i++) {
    if (s->secret_values[i]) memset(s->secret_values[i], 0, strlen(s->secret_values[i]));
    free(s->secret_names[i]);
    free(s->secret_values[i]);
  }
  free(s);
}

void ts_mapset_release(ts_mapset *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) set_free(s);
}

static int read_small(const char *path, ts_buf *b, char *err, size_t errlen) {
  FILE *f = fopen(path, "re");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    if (b->n + n > MAX_MAP_BYTES || ts_buf_append(b, chunk, n)) {
      fclose(f);
      snprintf(err, errlen, "%s is too large", path);
      return -1;
    }
  fclose(f);
  return 0;
}

/* Relative paths in a map are relative to the env dir (the modules dir's parent). */
static char *resolve(const char *modules_dir, const char *p) {
  char buf[PATH_MAX * 2];
  if (p[0] == '/') return strdup(p);
  snprintf(buf, sizeof buf, "%s/../%s", modules_dir, p);
  char *real = realpath(buf, NULL);
  return real ? real : strdup(buf);
}

static void add_secret(void *ctx, const char *name, const char *value) {
  ts_mapset *s = ctx;
  if (s->nsecrets >= MAX_SECRETS) return;
  s->secret_names[s->nsecrets] = strdup(name);
  s->secret_values[s->nsecrets] = strdup(value);
  s->nsecrets++;
}

/* The map at path; relative paths in it resolve against modules_dir's parent. */
static ts_mapset *load_set(const char *modules_dir, const char *path, const char *app, char *err, size_t errlen) {
  ts_buf text = {0};
  if (read_small(path, &text, err, errlen)) {
    ts_buf_free(&text);
    return NULL;
  }
  ts_mapset *s = calloc(1, sizeof *s);
  if (!s) {
    ts_buf_free(&text);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  atomic_init(&s->refs, 1);
  ts_strlcpy(s->app, app, sizeof s->app);
  ts_sha256_hex(text.p ? text.p : "", text.n, s->file_sha256);
  char perr[512];
  int rc = ts_appmap_parse(text.p ? text.p : "", text.n, &s->map, perr, sizeof perr);
  ts_buf_free(&text);
  if (rc) {
    snprintf(err, errlen, "%s: %s", path, perr);
    set_free(s);
    return NULL;
  }
  ts_appmap *m = &s->map;
  if (m->env_file[0]) {
    char *ef = resolve(modules_dir, m->env_file);
    ts_buf sec = {0};
    rc = read_small(ef, &sec, perr, sizeof perr);
    if (!rc) rc = ts_envfile_parse(sec.p ? sec.p : "", sec.n, add_secret, s, perr, sizeof perr);
    if (sec.p) memset(sec.p, 0, sec.n);
    ts_buf_free(&sec);
    free(ef);
    if (rc) {
      snprintf(err, errlen, "%s: secrets: %s", path, perr);
      set_free(s);
      return NULL;
    }
  }
  for (int i = 0; i < m->ndirs; i++) s->hosts[i] = resolve(modules_dir, m->dirs[i].host);
  for (int r = 0; r < m->nroutes; r++) {
    ts_appmap_route *ar = &m->routes[r];
    size_t nenv = (size_t)(m->app_env + ar->env_count + s->nsecrets);
    s->env_names[r] = calloc(nenv + 1, sizeof(char *));
    s->env_values[r] = calloc(nenv + 1, sizeof(char *));
    size_t ndirs = (size_t)(m->app_dirs + ar->dir_count);
    s->preopens[r] = calloc(ndirs + 1, sizeof(ts_preopen));
    if (!s->env_names[r] || !s->env_values[r] || !s->preopens[r]) {
      snprintf(err, errlen, "out of memory");
      set_free(s);
      return NULL;
    }
    size_t k = 0;
    for (int i = 0; i < m->app_env; i++, k++)
      s->env_names[r][k] = m->env_name[i], s->env_values[r][k] = m->env_value[i];
    for (int i = 0; i < ar->env_count; i++, k++)
      s->env_names[r][k] = m->env_name[ar->env_from + i], s->env_values[r][k] = m->env_value[ar->env_from + i];
    for (int i = 0; i < s->nsecrets; i++, k++)
      s->env_names[r][k] = s->secret_names[i], s->env_values[r][k] = s->secret_values[i];
    size_t d = 0;
    for (int i = 0; i < m->app_dirs; i++, d++)
      s->preopens[r][d] = (ts_preopen){s->hosts[i], m->dirs[i].guest, m->dirs[i].writable};
    for (int i = 0; i < ar->dir_count; i++, d++) {
      int x = ar->dir_from + i;
      s->preopens[r][d] = (ts_preopen){s->hosts[x], m->dirs[x].guest, m->dirs[x].writable};
    }
    s->routes[r] = (ts_maproute){.module = ar->module,
                                 .argv = ar->argv,
                                 .env_names = (const char *const *)s->env_names[r],
                                 .env_values = (const char *const *)s->env_values[r],
                                 .nenv = k,
                                 .preopens = s->preopens[r],
                                 .npreopens = d,
                                 .timeout_ms = m->timeout_ms,
                                 .memory_mb = m->memory_mb,
                                 .max_body = m->max_body};
  }
  return s;
}

static int find_locked(const char *app) {
  for (int i = 0; i < g_nmaps; i++)
    if (strcmp(g_maps[i]->app, app) == 0) return i;
  return -1;
}

void ts_appmaps_load(const char *modules_dir, const char *app) {
  char path[PATH_MAX], err[1024];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s.map", modules_dir, app);
  ts_mapset *old = NULL, *s = NULL;
  if (stat(path, &st) != 0) {
    pthread_mutex_lock(&g_maps_lock);
    int i = find_locked(app);
    if (i >= 0) {
      old = g_maps[i];
      g_maps[i] = g_maps[--g_nmaps];
    }
    pthread_mutex_unlock(&g_maps_lock);
    if (old) ts_log_info("app %s: map removed", app);
    ts_mapset_release(old);
    return;
  }
  s = load_set(modules_dir, path, app, err, sizeof err);
  if (!s) {
    ts_log_error("app %s: map rejected: %s (the previous map keeps serving)", app, err);
    return;
  }
  pthread_mutex_lock(&g_maps_lock);
  int i = find_locked(app);
  if (i >= 0) {
    old = g_maps[i];
    g_maps[i] = s;
  } else if (g_nmaps < MAX_MAPS) {
    g_maps[g_nmaps++] = s;
  } else {
    old = s;
    s = NULL;
  }
  pthread_mutex_unlock(&g_maps_lock);
  if (s) ts_log_info("app %s: map %s, %d route(s)", app, old ? "reloaded" : "loaded", s->map.nroutes);
  else ts_log_error("app %s: more than %d maps, ignored", app, MAX_MAPS);
  ts_mapset_release(old);
}

void ts_appmaps_scan(const char *modules_dir) {
  DIR *d = opendir(modules_dir);
  if (!d) return;
  struct dirent *de;
  char app[TS_APP_NAME_MAX + 1];
  while ((de = readdir(d)))
    if (ts_appmaps_is_map_file(de->d_name, app)) ts_appmaps_load(modules_dir, app);
  closedir(d);
  /* maps whose file is gone */
  char gone[MAX_MAPS][TS_APP_NAME_MAX + 1];
  int ngone = 0;
  pthread_mutex_lock(&g_maps_lock);
  for (int i = 0; i < g_nmaps; i++) {
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.map", modules_dir, g_maps[i]->app);
    if (stat(path, &st) != 0) ts_strlcpy(gone[ngone++], g_maps[i]->app, sizeof gone[0]);
  }
  pthread_mutex_unlock(&g_maps_lock);
  for (int i = 0; i < ngone; i++) ts_appmaps_load(modules_dir, gone[i]);
}

int ts_appmaps_owns_module(const char *module, size_t n) {
  int owned = 0;
  pthread_mutex_lock(&g_maps_lock);
  for (int i = 0; i < g_nmaps && !owned; i++)
    for (int r = 0; r < g_maps[i]->map.nroutes && !owned; r++) {
      const char *mod = g_maps[i]->map.routes[r].module;
      owned = strlen(mod) == n && memcmp(mod, module, n) == 0;
    }
  pthread_mutex_unlock(&g_maps_lock);
  return owned;
}

/* Keep route r's sub-routes current with its module's version (locked). */
static void refresh_dyn_locked(ts_mapset *s, int r, ts_dyn_routes_fn dyn) {
  const char *sha = NULL;
  const char *text = dyn ? dyn(s->map.routes[r].module, &sha) : NULL;
  if (!sha) sha = "";
  if (strcmp(s->dyn_sha[r], sha) == 0) return;
  free(s->dyn[r]);
  s->dyn[r] = NULL;
  s->ndyn[r] = 0;
  ts_strlcpy(s->dyn_sha[r], sha, sizeof s->dyn_sha[r]);
  if (!text) return;
  ts_wentry *t = calloc(TS_APPMAP_MAX_ROUTES * 4, sizeof *t);
  if (!t) return;
  int count = 0;
  char err[512];
  if (ts_wroutes_add_dynamic(&s->map.routes[r].pat, r, text, strlen(text), t, &count, TS_APPMAP_MAX_ROUTES * 4, err,
                             sizeof err)) {
    ts_log_error("app %s: module %s: %s (its sub-routes are ignored)", s->app, s->map.routes[r].module, err);
    free(t);
    return;
  }
  s->dyn[r] = t;
  s->ndyn[r] = count;
}

/* The most specific route of the sets for path (g_maps_lock held); see ts_appmaps_match. */
static int match_sets_locked(ts_mapset *const *sets, int nsets, const char *path, size_t n, ts_dyn_routes_fn dyn,
                             ts_maphit *hit) {
  ts_mapset *best_set = NULL;
  int best_route = -1, best_exact = 0;
  size_t best_len = 0;
  const ts_wentry *best_dyn = NULL;
  for (int i = 0; i < nsets; i++) {
    ts_mapset *s = sets[i];
    for (int r = 0; r < s->map.nroutes; r++) {
      refresh_dyn_locked(s, r, dyn);
      /* WAGI's table order: the sub-routes (last listed first), then the route */
      for (int k = -1; k < s->ndyn[r]; k++) {
        const ts_wpattern *p = k < 0 ? &s->map.routes[r].pat : &s->dyn[r][k].pat;
        if (!ts_wpattern_match(p, path, n)) continue;
        int exact = !p->wildcard;
        size_t len = strlen(p->base);
        int better =
            !best_set || exact > best_exact || (exact == best_exact && len > best_len) ||
            /* equal pattern: the sub-route comes before its parent */
            (exact == best_exact && len == best_len && best_set == s && best_route == r && !best_dyn && k >= 0);
        if (better) {
          best_set = s;
          best_route = r;
          best_exact = exact;
          best_len = len;
          best_dyn = k < 0 ? NULL : &s->dyn[r][k];
        }
      }
    }
  }
  if (best_set) {
    atomic_fetch_add(&best_set->refs, 1);
    hit->set = best_set;
    hit->route = best_set->routes[best_route];
    hit->pat = best_dyn ? best_dyn->pat : best_set->map.routes[best_route].pat;
    ts_strlcpy(hit->entrypoint, best_dyn ? best_dyn->entrypoint : best_set->map.routes[best_route].entrypoint,
               sizeof hit->entrypoint);
  }
  return best_set != NULL;
}

int ts_appmaps_match(const char *path, size_t n, ts_dyn_routes_fn dyn, ts_maphit *hit) {
  pthread_mutex_lock(&g_maps_lock);
  int found = match_sets_locked(g_maps, g_nmaps, path, n, dyn, hit);
  pthread_mutex_unlock(&g_maps_lock);
  return found;
}

/* ------------------------------------------------------------ previews --- */

static int find_preview_locked(const char *app, size_t n) {
  for (int i = 0; i < g_npmaps; i++)
    if (strlen(g_pmaps[i].app) == n && memcmp(g_pmaps[i].app, app, n) == 0) return i;
  return -1;
}

void ts_appmaps_load_preview(const char *modules_dir, const char *preview_dir, const char *app) {
  char path[PATH_MAX], err[512] = "";
  struct stat st;
  snprintf(path, sizeof path, "%s/%s.map", preview_dir, app);
  ts_mapset *s = NULL, *old = NULL;
  int gone = stat(path, &st) != 0;
  if (!gone) s = load_set(modules_dir, path, app, err, sizeof err);
  char sha[65] = "";
  if (s) ts_strlcpy(sha, s->file_sha256, sizeof sha);
  else if (!gone) { /* rejected: still name the file deploy placed, so it can stop waiting */ ts_buf text = {0};
    char rerr[256];
    if (read_small(path, &text, rerr, sizeof rerr) == 0) ts_sha256_hex(text.p ? text.p : "", text.n, sha);
    ts_buf_free(&text);
  }
  pthread_mutex_lock(&g_maps_lock);
  int i = find_preview_locked(app, strlen(app));
  if (i >= 0) old = g_pmaps[i].set;
  if (gone) {
    if (i >= 0) g_pmaps[i] = g_pmaps[--g_npmaps];
  } else {
    if (i < 0 && g_npmaps < MAX_MAPS) i = g_npmaps++;
    if (i >= 0) {
      ts_strlcpy(g_pmaps[i].app, app, sizeof g_pmaps[i].app);
      ts_strlcpy(g_pmaps[i].file_sha256, sha, sizeof g_pmaps[i].file_sha256);
      ts_strlcpy(g_pmaps[i].error, s ? "" : err, sizeof g_pmaps[i].error);
      g_pmaps[i].set = s;
      s = NULL;
    }
  }
  pthread_mutex_unlock(&g_maps_lock);
  if (gone && old) ts_log_info("app %s: preview map removed", app);
  else if (!gone && err[0]) ts_log_error("app %s: preview map rejected: %s", app, err);
  else if (!gone) ts_log_info("app %s: preview map %.12s loaded", app, sha);
  ts_mapset_release(old);
  ts_mapset_release(s); /* only when there was no room */
}

void ts_appmaps_scan_previews(const char *modules_dir, const char *preview_dir) {
  DIR *d = opendir(preview_dir);
  char app[TS_APP_NAME_MAX + 1];
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)))
      if (ts_appmaps_is_map_file(de->d_name, app)) ts_appmaps_load_preview(modules_dir, preview_dir, app);
    closedir(d);
  }
  char gone[MAX_MAPS][TS_APP_NAME_MAX + 1];
  int ngone = 0;
  pthread_mutex_lock(&g_maps_lock);
  for (int i = 0; i < g_npmaps; i++) {
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.map", preview_dir, g_pmaps[i].app);
    if (stat(path, &st) != 0) ts_strlcpy(gone[ngone++], g_pmaps[i].app, sizeof gone[0]);
  }
  pthread_mutex_unlock(&g_maps_lock);
  for (int i = 0; i < ngone; i++) ts_appmaps_load_preview(modules_dir, preview_dir, gone[i]);
}

int ts_appmaps_match_preview(const char *app, size_t app_n, const char *path, size_t n, ts_dyn_routes_fn dyn,
                             ts_maphit *hit) {
  int found = 0;
  pthread_mutex_lock(&g_maps_lock);
  int i = find_preview_locked(app, app_n);
  if (i >= 0 && g_pmaps[i].set) found = match_sets_locked(&g_pmaps[i].set, 1, path, n, dyn, hit);
  pthread_mutex_unlock(&g_maps_lock);
  return found;
}

int ts_appmaps_has_preview(const char *app, size_t app_n) {
  pthread_mutex_lock(&g_maps_lock);
  int i = find_preview_locked(app, app_n);
  pthread_mutex_unlock(&g_maps_lock);
  return i >= 0;
}

void ts_appmaps_previews_json(ts_buf *b) {
  pthread_mutex_lock(&g_maps_lock);
  ts_buf_puts(b, "[");
  for (int i = 0; i < g_npmaps; i++) {
    const preview_map *p = &g_pmaps[i];
    ts_buf_puts(b, i ? ",{\"app\":" : "{\"app\":");
    ts_buf_json_str(b, p->app);
    ts_buf_puts(b, ",\"file_sha256\":");
    ts_buf_json_str(b, p->file_sha256);
    ts_buf_printf(b, ",\"state\":\"%s\",\"routes\":%d,\"error\":", p->set ? "ready" : "failed",
                  p->set ? p->set->map.nroutes : 0);
    if (p->set) ts_buf_puts(b, "null");
    else ts_buf_json_str(b, p->error);
    ts_buf_puts(b, "}");
  }
  ts_buf_puts(b, "]");
  pthread_mutex_unlock(&g_maps_lock);
}

void ts_appmaps_live_json(ts_buf *b) {
  pthread_mutex_lock(&g_maps_lock);
  ts_buf_puts(b, "[");
  for (int i = 0; i < g_nmaps; i++) {
    ts_buf_puts(b, i ? ",{\"app\":" : "{\"app\":");
    ts_buf_json_str(b, g_maps[i]->app);
    ts_buf_puts(b, ",\"file_sha256\":");
    ts_buf_json_str(b, g_maps[i]->file_sha256);
    ts_buf_printf(b, ",\"routes\":%d}", g_maps[i]->map.nroutes);
  }
  ts_buf_puts(b, "]");
  pthread_mutex_unlock(&g_maps_lock);
}
