/* @NAME@: a Tiramisu app in C (made by `tiramisu init`).
 *
 * Each request runs this program once, as CGI (WAGI): the request comes in as
 * environment variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, HTTP_*), the
 * body on stdin; print the response headers, a blank line, then the body.
 * Build:  tiramisu build .        Deploy:  tiramisu deploy . --host HOST
 */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO"); /* the part after /@NAME@ */
    printf("Content-Type: text/plain; charset=utf-8\n\n");
    printf("Hello from @NAME@! %s %s\n", method ? method : "GET", path && *path ? path : "/");
    return 0; /* a non-zero exit is a failed request (500) */
}
