/* WAGI routes and app maps, pure: no I/O, no Wasmtime.
 *
 * Routes follow deislabs/wagi: "/a" is exact (not "/a/", not "/a/b"); "/a/..."
 * matches "/a" and everything below "/a/"; "/..." matches every path. A
 * module's `_routes` export prints "SUBROUTE ENTRYPOINT" lines, each appended
 * to the module's own route. The most specific match serves: exact first,
 * then the longest wildcard; equal patterns go to the earlier table entry
 * (per route its `_routes` lines last-listed first, then the route itself).
 * SCRIPT_NAME is the route without "/..." ("/" for "/..."); X_RAW_PATH_INFO
 * the rest of the path after it. The same contract is implemented in
 * tiramisu_tasks/apps/wagiroutes.py; cserver/contract/wagi_routes.json holds
 * the cases both run.
 *
 * An app map (wasm_modules/<app>.map, written by deploy) lists an app's
 * routes with what each runs; see ts_appmap_parse for the format. */
#ifndef TS_APPMAP_H
#define TS_APPMAP_H

#include <stddef.h>

#define TS_WROUTE_MAX 512
#define TS_ENTRY_MAX 128
#define TS_WARGV_MAX 512

typedef struct {
  char base[TS_WROUTE_MAX]; /* the route without "/..." ("" for "/...") */
  int wildcard;
} ts_wpattern;

typedef struct {
  ts_wpattern pat;
  char entrypoint[TS_ENTRY_MAX];
  int owner; /* index of the declared route this entry comes from */
} ts_wentry;

/* Check a route's syntax (as wagiroutes.check_route): starts with '/', path
 * characters only, no "." ".." "..." segments but a final "/...", no "//";
 * `reserved` also refuses /_tiramisu and below. 0, or -1 with err. */
int ts_wroute_check(const char *text, size_t n, int reserved, ts_wpattern *out, char *err, size_t errlen);
int ts_wentry_name_valid(const char *s, size_t n); /* a plausible export name */
int ts_wpattern_match(const ts_wpattern *p, const char *path, size_t n);
/* sub below parent, one slash between; -1 when too long. */
int ts_wpattern_append(const ts_wpattern *parent, const ts_wpattern *sub, ts_wpattern *out);
/* The route as written (X_MATCHED_ROUTE) into buf. */
void ts_wpattern_text(const ts_wpattern *p, char *buf, size_t n);
/* SCRIPT_NAME, and the offset in `path` where X_RAW_PATH_INFO starts. */
void ts_wpattern_split(const ts_wpattern *p, const char *path, size_t n, char *script, size_t script_n,
                       size_t *info_off);

/* A `_routes` output appended after `parent` (owner = the declared index) to
 * table[*count..cap), in WAGI's table order (last line first). Blank lines
 * skipped; a missing leading '/' added. 0, or -1 with err ("_routes line N:
 * ..." / "_routes printed nothing"). */
int ts_wroutes_add_dynamic(const ts_wpattern *parent, int owner, const char *text, size_t n, ts_wentry *table,
                           int *count, int cap, char *err, size_t errlen);
/* Whether a `_routes` output is valid on its own (every line "SUBROUTE
 * ENTRYPOINT", not empty, at most TS_APPMAP_MAX_ROUTES * 4 lines): WAGI
 * refuses to load a module whose output is not. 0, or -1 with err. */
int ts_wroutes_check(const char *text, size_t n, char *err, size_t errlen);
/* Index of the entry serving path, or -1 (404). */
int ts_wtable_match(const ts_wentry *table, int count, const char *path, size_t n);

/* argv as WAGI builds it (handlers.rs build_argv). NULL or "" template: the
 * request path, then the query split on '&' (empty items kept). A template:
 * every ${SCRIPT_NAME} replaced by the request path (WAGI uses the full path,
 * not SCRIPT_NAME; `script` is unused), then every ${ARGS} by the raw query
 * with '&' turned into ' ', then split on whitespace. Nothing is decoded.
 * Words are written NUL-terminated into buf; returns the word count, or -1
 * when buf or max_words is too small. */
int ts_wargv_expand(const char *tmpl, const char *script, const char *path, size_t path_n, const char *query,
                    size_t query_n, char *buf, size_t buf_n, const char **words, int max_words);

/* ---- app maps ---------------------------------------------------------- */

#define TS_APPMAP_MAX_ROUTES 64
#define TS_APPMAP_MAX_ENV 64
#define TS_APPMAP_MAX_DIRS 16

typedef struct {
  char guest[256];
  char host[512]; /* relative to the env dir, or absolute */
  int writable;
} ts_appmap_dir;

typedef struct {
  ts_wpattern pat;
  char module[65]; /* the module: wasm_modules/<module>.wasm */
  char entrypoint[TS_ENTRY_MAX];
  char argv[TS_WARGV_MAX]; /* "" = WAGI's default */
  int env_from, env_count; /* slice of ts_appmap.env_* for this route */
  int dir_from, dir_count; /* slice of ts_appmap.dirs */
} ts_appmap_route;

typedef struct {
  int nroutes;
  ts_appmap_route routes[TS_APPMAP_MAX_ROUTES];
  int nenv; /* app-wide entries first (app_env of them), then per route */
  int app_env;
  char env_name[TS_APPMAP_MAX_ENV][64];
  char env_value[TS_APPMAP_MAX_ENV][512];
  int ndirs, app_dirs;
  ts_appmap_dir dirs[TS_APPMAP_MAX_DIRS];
  char env_file[512];                   /* secrets: KEY=VALUE lines, 0600; "" = none */
  long timeout_ms, memory_mb, max_body; /* 0 = the server's default */
} ts_appmap;

/* Parse an app map (pure). Lines, fields separated by one TAB, '#' comments:
 *
 *   tiramisu-appmap 1                         first line
 *   env NAME VALUE                            app-wide until the first route
 *   dir GUEST HOST ro|rw                      app-wide until the first route
 *   envfile PATH                              secrets file
 *   limit timeout-ms|memory-mb|max-body N
 *   route PATTERN MODULE ENTRYPOINT [ARGV]    then env/dir lines for it
 *
 * MODULE names wasm_modules/<MODULE>.wasm (an app name). Paths are absolute
 * or relative to the env dir (the modules dir's parent).
 *
 * 0, or -1 with err ("line N: ..."). */
int ts_appmap_parse(const char *text, size_t n, ts_appmap *m, char *err, size_t errlen);

/* KEY=VALUE lines of an env file (secrets), '#' comments and blank lines
 * skipped, optional "export ", values optionally in matching quotes. Calls
 * fn for each; 0, or -1 with err naming the line (never the value). */
int ts_envfile_parse(const char *text, size_t n, void (*fn)(void *ctx, const char *name, const char *value), void *ctx,
                     char *err, size_t errlen);

#endif
