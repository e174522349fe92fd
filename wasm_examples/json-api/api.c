/*
 * A small JSON API as a WAGI app: routes on PATH_INFO, reads a POST body from
 * stdin, sets the status with a `Status:` header, and sends repeated headers
 * (two Set-Cookie). Plain C and wasi-libc only.
 *
 *   GET    /                 index of routes
 *   GET    /items/{id}       an item (1..100), 404 otherwise, 400 if not a number
 *   POST   /items            JSON body -> 201 Created with Location
 *   DELETE /items/{id}       405 with Allow (read-only API)
 *   POST   /session          {"user": "..."} -> two Set-Cookie headers
 *   GET    /whoami           echoes CGI variables (method, query, user agent, URL)
 *   GET    /old              Location only: the server answers 302
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (1 << 20)

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v ? v : fallback;
}

/* Print s as a JSON string literal (quotes included). */
static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (c < 0x20) printf("\\u%04x", c);
            else putchar(c);
        }
    }
    putchar('"');
}

static void json_cstr(const char *s) { json_string(s, strlen(s)); }

/* Headers of a JSON response; the blank line ends them. */
static void begin(int status, const char *reason) {
    printf("Status: %d %s\n", status, reason);
    printf("Content-Type: application/json\n");
    printf("Cache-Control: no-store\n\n");
}

static void error_response(int status, const char *reason, const char *message) {
    begin(status, reason);
    printf("{\"error\": ");
    json_cstr(message);
    printf(", \"status\": %d}\n", status);
}

/* Read the request body (CONTENT_LENGTH bytes, or to EOF without it). */
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

/* The string value of "key" in a flat JSON object, copied into out (tiny, not a parser). */
static int json_field(const char *body, const char *key, char *out, size_t outlen) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *p = strstr(body, pattern);
    if (!p) return 0;
    p += strlen(pattern);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p++ != ':') return 0;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p++ != '"') return 0;
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < outlen) {
        if (*p == '\\' && p[1]) p++;
        out[i++] = *p++;
    }
    out[i] = '\0';
    return *p == '"';
}

/* A positive decimal id after "/items/", or -1 when it is not a number. */
static long parse_id(const char *s) {
    if (!*s) return -1;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static void index_route(void) {
    begin(200, "OK");
    printf("{\"app\": \"json-api\", \"routes\": [\"GET /\", \"GET /items/{id}\", \"POST /items\", "
           "\"DELETE /items/{id}\", \"POST /session\", \"GET /whoami\", \"GET /old\"]}\n");
}

static void get_item(const char *idtext) {
    long id = parse_id(idtext);
    if (id < 0) {
        error_response(400, "Bad Request", "id must be a number");
    } else if (id < 1 || id > 100) {
        char msg[64];
        snprintf(msg, sizeof msg, "no item %ld", id);
        error_response(404, "Not Found", msg);
    } else {
        begin(200, "OK");
        printf("{\"id\": %ld, \"name\": \"item %ld\"}\n", id, id);
    }
}

static void create_item(void) {
    const char *ctype = env_or("CONTENT_TYPE", "");
    if (strncmp(ctype, "application/json", 16) != 0) {
        error_response(415, "Unsupported Media Type", "send Content-Type: application/json");
        return;
    }
    size_t len = 0;
    char *body = read_body(&len);
    char name[128];
    if (!body || !json_field(body, "name", name, sizeof name)) {
        error_response(422, "Unprocessable Entity", "body needs a \"name\" string");
        free(body);
        return;
    }
    printf("Status: 201 Created\n");
    printf("Content-Type: application/json\n");
    printf("Location: %s/items/101\n\n", env_or("SCRIPT_NAME", ""));
    printf("{\"created\": true, \"id\": 101, \"name\": ");
    json_cstr(name);
    printf(", \"bytes\": %zu, \"echo\": ", len);
    json_string(body, len);
    printf("}\n");
    free(body);
}

static void session(void) {
    size_t len = 0;
    char *body = read_body(&len);
    char user[64];
    if (!body || !json_field(body, "user", user, sizeof user) || !user[0]) {
        error_response(400, "Bad Request", "body needs a \"user\" string");
        free(body);
        return;
    }
    printf("Status: 200 OK\n");
    printf("Content-Type: application/json\n");
    /* Repeated headers: the server must keep both, in this order. */
    printf("Set-Cookie: session=s3cr3t-%s; Path=/; HttpOnly; SameSite=Lax\n", user);
    printf("Set-Cookie: theme=dark; Path=/; Max-Age=86400\n\n");
    printf("{\"user\": ");
    json_cstr(user);
    printf(", \"logged_in\": true}\n");
    free(body);
}

static void whoami(void) {
    begin(200, "OK");
    printf("{\"method\": ");
    json_cstr(env_or("REQUEST_METHOD", ""));
    printf(", \"script_name\": ");
    json_cstr(env_or("SCRIPT_NAME", ""));
    printf(", \"path_info\": ");
    json_cstr(env_or("PATH_INFO", ""));
    printf(", \"query\": ");
    json_cstr(env_or("QUERY_STRING", ""));
    printf(", \"user_agent\": ");
    json_cstr(env_or("HTTP_USER_AGENT", ""));
    printf(", \"full_url\": ");
    json_cstr(env_or("X_FULL_URL", ""));
    printf(", \"gateway\": ");
    json_cstr(env_or("GATEWAY_INTERFACE", ""));
    printf("}\n");
}

int main(void) {
    const char *method = env_or("REQUEST_METHOD", "GET");
    const char *path = env_or("PATH_INFO", "");
    if (!*path) path = "/";

    if (strcmp(path, "/") == 0 && strcmp(method, "GET") == 0) {
        index_route();
    } else if (strncmp(path, "/items/", 7) == 0) {
        if (strcmp(method, "GET") == 0) {
            get_item(path + 7);
        } else {
            printf("Status: 405 Method Not Allowed\nAllow: GET\n");
            printf("Content-Type: application/json\n\n{\"error\": \"read-only\", \"status\": 405}\n");
        }
    } else if (strcmp(path, "/items") == 0 && strcmp(method, "POST") == 0) {
        create_item();
    } else if (strcmp(path, "/session") == 0 && strcmp(method, "POST") == 0) {
        session();
    } else if (strcmp(path, "/whoami") == 0) {
        whoami();
    } else if (strcmp(path, "/old") == 0) {
        /* No Status and no Content-Type: a bare redirect, 302 by the CGI rules. */
        printf("Location: %s/\n\n", env_or("SCRIPT_NAME", ""));
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "no route for %s %.200s", method, path);
        error_response(404, "Not Found", msg);
    }
    return 0;
}
