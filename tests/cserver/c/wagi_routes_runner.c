/* Runs cserver/contract/wagi_routes.json cases against ts_appmap.c (driven by
 * tests/cserver/test_wagi_routes_c.py over stdin, one command per line):
 *
 *   route PATTERN ENTRYPOINT        declare a route (TAB-separated)
 *   dynamic HEX                     the previous route's _routes output, hex
 *   match PATH                      -> "hit ROUTE ENTRYPOINT SCRIPT_NAME RAW_INFO PATH_INFO" | "miss"
 *   dyncheck HEX                    -> "ok" | "dynerr MESSAGE"
 *   argv HEX|- SCRIPT PATH QUERY    -> "argv W1 W2 ..."
 *   appmap HEX                      -> "maperr MESSAGE" | one line per route/env/dir/limit parsed
 *   envfile HEX                     -> "enverr MESSAGE" | "env NAME VALUE" lines, then "end"
 *   reset */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_appmap.h"
#include "ts_http.h"

#define MAXD 64

static ts_wpattern decl[MAXD];
static char decl_ep[MAXD][TS_ENTRY_MAX];
static char *decl_dyn[MAXD];
static int ndecl;
static ts_wentry table[1024];
static int ntable = -1;

static char *unhex(const char *h) {
  size_t n = strlen(h) / 2;
  char *out = malloc(n + 1);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(h + 2 * i, "%2x", &v);
    out[i] = (char)v;
  }
  out[n] = 0;
  return out;
}

static void print_env(void *ctx, const char *name, const char *value) {
  (void)ctx;
  printf("env\t%s\t%s\n", name, value);
}

static int build(void) {
  char err[512];
  ntable = 0;
  for (int i = 0; i < ndecl; i++) {
    if (decl_dyn[i] &&
        ts_wroutes_add_dynamic(&decl[i], i, decl_dyn[i], strlen(decl_dyn[i]), table, &ntable, 1024, err, sizeof err)) {
      printf("dynerr\t%s\n", err);
      return -1;
    }
    table[ntable].pat = decl[i];
    strcpy(table[ntable].entrypoint, decl_ep[i]);
    table[ntable].owner = i;
    ntable++;
  }
  return 0;
}

int main(void) {
  char line[8192];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    char *f[6] = {0};
    int nf = 0;
    for (char *p = line; nf < 6;) {
      f[nf++] = p;
      char *t = strchr(p, '\t');
      if (!t) break;
      *t = 0;
      p = t + 1;
    }
    char err[512];
    if (strcmp(f[0], "reset") == 0) {
      for (int i = 0; i < ndecl; i++) free(decl_dyn[i]);
      ndecl = 0;
      ntable = -1;
    } else if (strcmp(f[0], "route") == 0) {
      if (ts_wroute_check(f[1], strlen(f[1]), 1, &decl[ndecl], err, sizeof err)) {
        printf("routeerr\t%s\n", err);
        continue;
      }
      strcpy(decl_ep[ndecl], f[2]);
      decl_dyn[ndecl++] = NULL;
      ntable = -1;
    } else if (strcmp(f[0], "dynamic") == 0) {
      decl_dyn[ndecl - 1] = unhex(f[1]);
      ntable = -1;
    } else if (strcmp(f[0], "match") == 0) {
      if (ntable < 0 && build()) continue;
      size_t n = strlen(f[1]);
      int i = ts_wtable_match(table, ntable, f[1], n);
      if (i < 0) {
        printf("miss\n");
        continue;
      }
      char text[TS_WROUTE_MAX + 8], script[TS_WROUTE_MAX + 2];
      size_t off;
      ts_wpattern_text(&table[i].pat, text, sizeof text);
      ts_wpattern_split(&table[i].pat, f[1], n, script, sizeof script, &off);
      char *dec = malloc(n - off + 1);
      size_t dn = ts_http_percent_decode((ts_str){f[1] + off, n - off}, dec);
      printf("hit\t%s\t%s\t%s\t%s\t%.*s\n", text, table[i].entrypoint, script, f[1] + off, (int)dn, dec);
      free(dec);
    } else if (strcmp(f[0], "dyncheck") == 0) {
      char *t = unhex(f[1]);
      ts_wpattern parent = {"/p", 0};
      ts_wentry tmp[64];
      int cnt = 0;
      if (ts_wroutes_add_dynamic(&parent, 0, t, strlen(t), tmp, &cnt, 64, err, sizeof err)) printf("dynerr\t%s\n", err);
      else printf("ok\n");
      free(t);
    } else if (strcmp(f[0], "appmap") == 0) {
      char *t = unhex(f[1]);
      static ts_appmap m;
      if (ts_appmap_parse(t, strlen(t), &m, err, sizeof err)) {
        printf("maperr\t%s\n", err);
      } else {
        for (int i = 0; i < m.app_env; i++) printf("appenv\t%s\t%s\n", m.env_name[i], m.env_value[i]);
        for (int i = 0; i < m.app_dirs; i++)
          printf("appdir\t%s\t%s\t%s\n", m.dirs[i].guest, m.dirs[i].host, m.dirs[i].writable ? "rw" : "ro");
        for (int r = 0; r < m.nroutes; r++) {
          char text[TS_WROUTE_MAX + 8];
          ts_wpattern_text(&m.routes[r].pat, text, sizeof text);
          printf("route\t%s\t%s\t%s\t%s\n", text, m.routes[r].module, m.routes[r].entrypoint, m.routes[r].argv);
          for (int i = 0; i < m.routes[r].env_count; i++)
            printf("env\t%s\t%s\n", m.env_name[m.routes[r].env_from + i], m.env_value[m.routes[r].env_from + i]);
          for (int i = 0; i < m.routes[r].dir_count; i++) {
            ts_appmap_dir *d = &m.dirs[m.routes[r].dir_from + i];
            printf("dir\t%s\t%s\t%s\n", d->guest, d->host, d->writable ? "rw" : "ro");
          }
        }
        printf("limits\t%ld\t%ld\t%ld\t%s\n", m.timeout_ms, m.memory_mb, m.max_body, m.env_file);
      }
      printf("end\n");
      free(t);
    } else if (strcmp(f[0], "envfile") == 0) {
      char *t = unhex(f[1]);
      if (ts_envfile_parse(t, strlen(t), print_env, NULL, err, sizeof err)) printf("enverr\t%s\n", err);
      printf("end\n");
      free(t);
    } else if (strcmp(f[0], "argv") == 0) {
      char *tmpl = strcmp(f[1], "-") == 0 ? NULL : unhex(f[1]);
      char buf[4096];
      const char *w[64];
      int nw = ts_wargv_expand(tmpl, f[2], f[3], strlen(f[3]), f[4], strlen(f[4]), buf, sizeof buf, w, 64);
      printf("argv");
      for (int i = 0; i < nw; i++) printf("\t%s", w[i]);
      printf("\n");
      free(tmpl);
    }
    fflush(stdout);
  }
  for (int i = 0; i < ndecl; i++) free(decl_dyn[i]);
  return 0;
}
