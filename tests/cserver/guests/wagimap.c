/* A WAGI module with several entry points, a `_routes` export and file access
 * (for app map tests): every handler prints the route variables, argv and the
 * app's own variables; `?write=TEXT` appends to /data/log.txt, `?read=PATH`
 * prints a file, `?writero=NAME` tries to create /templates/NAME and to append
 * to /templates/t.txt, `?redirect=TEXT` sends stdout to /data/out.txt
 * (freopen: a file renumbered onto fd 1) and prints TEXT there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void show(const char *who, int argc, char **argv) {
  printf("Content-Type: text/plain\n\n");
  printf("handler=%s\n", who);
  const char *vars[] = {"SCRIPT_NAME", "PATH_INFO", "X_RAW_PATH_INFO", "X_MATCHED_ROUTE", "GREETING",
                        "MODE",        "ADMIN_TOKEN"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    printf("%s=%s\n", vars[i], v ? v : "(unset)");
  }
  for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
  const char *q = getenv("QUERY_STRING");
  if (q && strncmp(q, "write=", 6) == 0) {
    FILE *f = fopen("/data/log.txt", "a");
    if (!f) {
      printf("write: failed\n");
    } else {
      fprintf(f, "%s\n", q + 6);
      fclose(f);
      printf("write: ok\n");
    }
  }
  if (q && strncmp(q, "read=", 5) == 0) {
    FILE *f = fopen(q + 5, "r");
    if (!f) {
      printf("read: failed\n");
    } else {
      char buf[256];
      size_t n = fread(buf, 1, sizeof buf - 1, f);
      buf[n] = 0;
      fclose(f);
      printf("read: %s", buf);
    }
  }
  if (q && strncmp(q, "writero=", 8) == 0) {
    char path[256];
    snprintf(path, sizeof path, "/templates/%s", q + 8);
    FILE *f = fopen(path, "w");
    printf("create-ro: %s\n", f ? "ok" : "failed");
    if (f) fclose(f);
    f = fopen("/templates/t.txt", "a");
    printf("append-ro: %s\n", f ? "ok" : "failed");
    if (f) fclose(f);
  }
  if (q && strncmp(q, "redirect=", 9) == 0) {
    printf("redirect: next line goes to /data/out.txt\n");
    fflush(stdout);
    if (freopen("/data/out.txt", "w", stdout)) printf("%s\n", q + 9);
  }
  fflush(stdout); /* an export other than _start ends without libc's exit-time
                     flush */
}

int main(int argc, char **argv) {
  show("main", argc, argv);
  return 0;
}

__attribute__((export_name("hello"))) void hello(void) { show("hello", 0, NULL); }

__attribute__((export_name("goodbye"))) void goodbye(void) { show("goodbye", 0, NULL); }

__attribute__((export_name("_routes"))) void routes(void) {
  printf("/hello hello\n");
  printf("/goodbye/... goodbye\n");
  fflush(stdout);
}
