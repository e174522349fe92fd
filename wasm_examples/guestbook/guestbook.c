/* A guestbook as a WAGI app: HTML from a template folder, CSS from static
 * files (served by nginx), entries kept in the data volume, a greeting from
 * the environment and an admin token from a secret (tiramisu.toml).
 *
 *   GET  /guestbook/            the page: greeting + entries
 *   POST /guestbook/            form name=...&message=... -> append, 303 back
 *   GET  /guestbook/admin       Authorization: Bearer <ADMIN_TOKEN> -> entry count
 *
 * Concurrent posts: each entry is one write() of one line opened with
 * O_APPEND, so two requests never interleave inside a line (WASI passes
 * O_APPEND to the host). Anything more (edits, counters) needs its own
 * locking scheme: the server runs requests in parallel instances. */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENTRIES "/data/entries.txt"

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n < 2) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (buf) buf[n] = 0;
  if (len) *len = n;
  return buf;
}

static void html_escaped(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    switch (s[i]) {
    case '<': fputs("&lt;", stdout); break;
    case '>': fputs("&gt;", stdout); break;
    case '&': fputs("&amp;", stdout); break;
    case '"': fputs("&quot;", stdout); break;
    default: putchar(s[i]);
    }
  }
}

/* form value of key (percent-decoded, '+' as space) into out */
static int form_value(const char *body, const char *key, char *out, size_t cap) {
  size_t kn = strlen(key);
  for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
    if (strncmp(p, key, kn) != 0 || p[kn] != '=') continue;
    const char *v = p + kn + 1;
    size_t o = 0;
    while (*v && *v != '&' && o + 1 < cap) {
      if (*v == '+') out[o++] = ' ', v++;
      else if (*v == '%' && isxdigit((unsigned char)v[1]) && isxdigit((unsigned char)v[2])) {
        char hex[3] = {v[1], v[2], 0};
        out[o++] = (char)strtol(hex, NULL, 16);
        v += 3;
      } else out[o++] = *v++;
    }
    out[o] = 0;
    for (size_t i = 0; i < o; i++)
      if (out[i] == '\n' || out[i] == '\r' || out[i] == '\t') out[i] = ' ';
    return 1;
  }
  return 0;
}

static void page(void) {
  size_t tn;
  char *tpl = slurp("/templates/page.html", &tn);
  if (!tpl) {
    printf("Status: 500\nContent-Type: text/plain\n\nthe template folder is missing\n");
    return;
  }
  const char *greeting = getenv("GREETING");
  printf("Content-Type: text/html; charset=utf-8\n\n");
  for (const char *p = tpl; *p;) {
    const char *open = strstr(p, "{{");
    const char *close = open ? strstr(open, "}}") : NULL;
    if (!open || !close) {
      fputs(p, stdout);
      break;
    }
    fwrite(p, 1, (size_t)(open - p), stdout);
    size_t kn = (size_t)(close - open - 2);
    if (kn == 8 && strncmp(open + 2, "greeting", 8) == 0) {
      html_escaped(greeting ? greeting : "Hello", strlen(greeting ? greeting : "Hello"));
    } else if (kn == 7 && strncmp(open + 2, "entries", 7) == 0) {
      char *entries = slurp(ENTRIES, NULL);
      int any = 0;
      for (char *line = entries ? strtok(entries, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        fputs("<li><b>", stdout);
        html_escaped(line, (size_t)(tab - line));
        fputs("</b>: ", stdout);
        html_escaped(tab + 1, strlen(tab + 1));
        fputs("</li>\n", stdout);
        any = 1;
      }
      if (!any) fputs("<li class=\"empty\">No entries yet.</li>\n", stdout);
      free(entries);
    }
    p = close + 2;
  }
  free(tpl);
}

static void post(void) {
  const char *cl = getenv("CONTENT_LENGTH");
  size_t n = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
  if (n > 8192) n = 8192;
  char *body = calloc(1, n + 1);
  size_t got = body ? fread(body, 1, n, stdin) : 0;
  if (body) body[got] = 0;
  char name[128], message[1024];
  if (!body || !form_value(body, "name", name, sizeof name) || !form_value(body, "message", message, sizeof message) ||
      !name[0] || !message[0]) {
    printf("Status: 400\nContent-Type: text/plain\n\nname and message are required\n");
    free(body);
    return;
  }
  char line[1200];
  int ln = snprintf(line, sizeof line, "%s\t%s\n", name, message);
  int fd = open(ENTRIES, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd < 0 || write(fd, line, (size_t)ln) != ln) {
    printf("Status: 500\nContent-Type: text/plain\n\ncannot save the entry\n");
  } else {
    const char *script = getenv("SCRIPT_NAME");
    printf("Status: 303\nLocation: %s/\nContent-Type: text/plain\n\nsaved\n", script ? script : "");
  }
  if (fd >= 0) close(fd);
  free(body);
}

static void admin(void) {
  const char *token = getenv("ADMIN_TOKEN"), *auth = getenv("HTTP_X_ADMIN_TOKEN");
  if (!token || !token[0] || !auth || strcmp(auth, token) != 0) {
    printf("Status: 403\nContent-Type: text/plain\n\nforbidden\n");
    return;
  }
  char *entries = slurp(ENTRIES, NULL);
  int count = 0;
  for (char *p = entries; p && *p; p++) count += *p == '\n';
  printf("Content-Type: application/json\n\n{\"entries\": %d}\n", count);
  free(entries);
}

int main(void) {
  const char *method = getenv("REQUEST_METHOD");
  const char *info = getenv("PATH_INFO");
  if (info && strcmp(info, "/admin") == 0) admin();
  else if (method && strcmp(method, "POST") == 0) post();
  else page();
  return 0;
}
