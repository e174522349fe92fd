/* libFuzzer driver: the server.conf reader and every setting's value parser,
 * through ts_config_load with the input as the config file. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ts_conf.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_conf.%d.conf", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  static ts_config cfg;
  char err[512];
  char *argv[] = {"custom_server", "--config", path, NULL};
  ts_config_load(&cfg, 3, argv, err, sizeof err);
  return 0;
}
