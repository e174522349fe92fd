/*
 * Form / echo app: GET without a query shows an HTML form; anything else
 * echoes what the app received, as plain text: method, path, every query item
 * and url-encoded form field (decoded), any other body as is, and argv.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (1 << 20)

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v ? v : fallback;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode application/x-www-form-urlencoded text in place ('+' is a space). */
static void url_decode(char *s) {
    char *out = s;
    for (; *s; s++) {
        if (*s == '+') {
            *out++ = ' ';
        } else if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            *out++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* Print "<kind> <name> = <value>" for each &-separated pair of text. */
static void echo_pairs(const char *kind, const char *text) {
    char *copy = strdup(text);
    if (!copy) return;
    char *save = NULL;
    for (char *item = strtok_r(copy, "&", &save); item; item = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(item, '=');
        const char *value = "";
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        char *name = strdup(item), *val = strdup(value);
        if (name && val) {
            url_decode(name);
            url_decode(val);
            printf("%s %s = %s\n", kind, name, val);
        }
        free(name);
        free(val);
    }
    free(copy);
}

static char *read_body(size_t *len) {
    const char *cl = getenv("CONTENT_LENGTH");
    size_t want = (cl && *cl) ? (size_t)strtoul(cl, NULL, 10) : MAX_BODY;
    if (want > MAX_BODY) want = MAX_BODY;
    char *buf = malloc(want + 1);
    size_t got = 0;
    if (!buf) return NULL;
    while (got < want) {
        size_t n = fread(buf + got, 1, want - got, stdin);
        if (n == 0) break;
        got += n;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static void form_page(void) {
    const char *script = env_or("SCRIPT_NAME", "");
    printf("Content-Type: text/html; charset=utf-8\n\n");
    printf("<!doctype html>\n<title>form-echo</title>\n<h1>form-echo</h1>\n"
           "<form method=\"post\" action=\"%s/submit\">\n"
           "  <label>Name <input name=\"name\"></label>\n"
           "  <label>Language <input name=\"lang\"></label>\n"
           "  <button>Send</button>\n</form>\n", script);
}

int main(int argc, char **argv) {
    const char *method = env_or("REQUEST_METHOD", "GET");
    const char *query = env_or("QUERY_STRING", "");
    const char *path = env_or("PATH_INFO", "");
    if (strcmp(method, "GET") == 0 && !*query) {
        form_page();
        return 0;
    }
    printf("Content-Type: text/plain; charset=utf-8\n");
    printf("X-Echo-Method: %s\n\n", method);
    printf("method: %s\npath: %s\n", method, *path ? path : "/");
    echo_pairs("query", query);
    size_t len = 0;
    char *body = read_body(&len);
    if (body && len) {
        const char *ctype = env_or("CONTENT_TYPE", "");
        if (strncmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
            echo_pairs("form", body);
        } else {
            printf("body (%zu bytes, %s):\n%s\n", len, *ctype ? ctype : "no type", body);
        }
    }
    free(body);
    for (int i = 0; i < argc; i++) printf("argv[%d] = %s\n", i, argv[i]);
    return 0;
}
