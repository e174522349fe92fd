/* The smallest useful WAGI app: CGI headers, a blank line, the body. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *path = getenv("PATH_INFO");
    const char *method = getenv("REQUEST_METHOD");
    printf("Content-Type: text/plain; charset=utf-8\n\n");
    printf("Hello from C! %s %s\n", method ? method : "GET", path && *path ? path : "/");
    return 0;
}
