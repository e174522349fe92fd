/* Hello through Emscripten: -sSTANDALONE_WASM gives WASI imports instead of
 * the JavaScript glue. Including emscripten.h is what makes `tiramisu build`
 * choose emcc for this directory. */
#include <emscripten.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *path = getenv("PATH_INFO");
    printf("Content-Type: text/plain; charset=utf-8\n\n");
    printf("Hello from Emscripten %d.%d! %s\n", __EMSCRIPTEN_major__, __EMSCRIPTEN_minor__,
           path && *path ? path : "/");
    return 0;
}
