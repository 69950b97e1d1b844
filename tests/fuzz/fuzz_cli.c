/* SPDX-License-Identifier: MIT */
/*
 * The command-line parser: the bytes, split at NULs, are cachedo's argument
 * vector, read by cmd/main.c's own parse_args and load_config (main.c is
 * compiled in here with its main renamed, so the target runs the very
 * parser the binary has). Nothing is run: only parsing and configuration.
 */
#define main cachedo_main
#include "../../cmd/main.c"
#undef main

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  /* No config file, no CACHEDO_* variable: the command line alone. */
  setenv("XDG_CONFIG_HOME", "/nonexistent/cachedo-fuzz", 1);
  for (char **e = environ; *e != NULL;)
    if (strncmp(*e, "CACHEDO_", 8) == 0) {
      char name[256];
      size_t n = strcspn(*e, "=");

      snprintf(name, sizeof(name), "%.*s", (int)n, *e);
      unsetenv(name);
    } else {
      e++;
    }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct cli cli = {0};
  struct cdo_config cfg;
  char *argv[65], *block;
  int argc = fuzz_argv(data, size, "cachedo", argv, 65, &block);

  cdo_config_init(&cfg);
  if (parse_args(&cli, argc, argv) == 0 && cli.mode != M_HELP &&
      cli.mode != M_VERSION)
    load_config(&cfg, &cli);
  cdo_config_release(&cfg);
  free(cli.sets);
  free(block);
  return 0;
}
