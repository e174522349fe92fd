/* App maps on disk: wasm_modules/<app>.map files (written by deploy), loaded
 * and kept current by the registry's watcher, matched per request.
 *
 * A map (format: ts_appmap_parse) routes WAGI patterns of one app to modules
 * (wasm_modules/<module>.wasm), each with its entry point, argv template,
 * environment (the map's plain values and the secrets of its env file) and
 * preopened folders. A module's `_routes` output (read once per module
 * version, see ts_registry.c) adds sub-routes below each route that runs it.
 * A map that fails to parse is logged and the previous one keeps serving. */
#ifndef TS_APPMAPS_H
#define TS_APPMAPS_H

#include <stddef.h>

#include "ts_appmap.h"
#include "ts_engine.h"

typedef struct ts_mapset ts_mapset;

/* What one route runs, resolved when the map was loaded. */
typedef struct {
  const char *module;
  const char *argv; /* template, "" = WAGI's default */
  const char *const *env_names, *const *env_values;
  size_t nenv;
  const ts_preopen *preopens;
  size_t npreopens;
  long timeout_ms, memory_mb, max_body; /* the app's limits, 0 = the server's */
} ts_maproute;

typedef struct {
  ts_mapset *set; /* referenced: ts_mapset_release when the request is done */
  ts_maproute route;
  ts_wpattern pat; /* what matched (a _routes sub-route or the route itself) */
  char entrypoint[TS_ENTRY_MAX];
} ts_maphit;

/* Returns a module's current `_routes` output (NULL: none) and its version
 * sha256 in *sha; called with the registry's lock held. */
typedef const char *(*ts_dyn_routes_fn)(const char *module, const char **sha);

int ts_appmaps_is_map_file(const char *file, char *app); /* "<app>.map" -> 1 and app */
/* (Re)load <modules_dir>/<app>.map, or forget the app's map when the file is gone. */
void ts_appmaps_load(const char *modules_dir, const char *app);
/* Load every *.map, forget maps whose file is gone. */
void ts_appmaps_scan(const char *modules_dir);
/* The most specific route of any map for path: 1 (hit filled, referenced), 0 none. */
int ts_appmaps_match(const char *path, size_t n, ts_dyn_routes_fn dyn, ts_maphit *hit);
void ts_mapset_release(ts_mapset *s);
/* Preview maps: <preview_dir>/<app>.map, a release's map under test, served
 * only at /_tiramisu/preview/<app>/... (ts_registry_route_preview) and never
 * part of live routing. A rejected one is remembered with its error. */
void ts_appmaps_load_preview(const char *modules_dir, const char *preview_dir, const char *app);
void ts_appmaps_scan_previews(const char *modules_dir, const char *preview_dir);
/* Like ts_appmaps_match, within app's preview map only. */
int ts_appmaps_match_preview(const char *app, size_t app_n, const char *path, size_t n, ts_dyn_routes_fn dyn,
                             ts_maphit *hit);
/* Has app a preview map file (loaded or rejected)? */
int ts_appmaps_has_preview(const char *app, size_t app_n);
/* [{"app","file_sha256","state":"ready"|"failed","routes","error"}] for /_tiramisu/apps. */
void ts_appmaps_previews_json(ts_buf *b);
/* [{"app","file_sha256","routes"}] of the live maps: deploy waits for its map by the sha256. */
void ts_appmaps_live_json(ts_buf *b);
/* Is this module name used by a map (its implicit /<name> route is then off)? */
int ts_appmaps_owns_module(const char *module, size_t n);

#endif
