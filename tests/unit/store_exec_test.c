/* SPDX-License-Identifier: MIT */
/*
 * The exec: backend's side of the store suite, with the shipped
 * examples/cachedo-files helper: its URL and its damage hook.
 * test_store.c includes this file; the helpers are test_store.c's.
 */

/*
 * CACHEDO_TEST_EXEC_URL, else the shipped examples/cachedo-files (the
 * suite runs from the top of the tree, as make does) on a directory in dir.
 */
static char exec_files_dir[4200];

static const char *exec_url(const char *dir, char *buf, size_t len)
{
  const char *env = getenv("CACHEDO_TEST_EXEC_URL");
  char cwd[4096];

  if (env != NULL && *env) {
    cdo__fmt(buf, len, "%s", env);
    return NULL;
  }
  if (getcwd(cwd, sizeof(cwd)) == NULL)
    return "cannot find the current directory";
  cdo__fmt(exec_files_dir, sizeof(exec_files_dir), "%s/files", dir);
  cdo__fmt(buf, len, "exec:'%s/examples/cachedo-files' '%s'", cwd,
           exec_files_dir);
  return NULL;
}

/* Edits k's file of examples/cachedo-files: DIR/ab/KEY. */
static int exec_damage(const char *url, const struct cdo__key *k,
                       enum damage how, uint64_t off)
{
  char path[4400];

  (void)url;
  if (exec_files_dir[0] == 0)
    skip(); /* a helper of CACHEDO_TEST_EXEC_URL: its layout is unknown */
  cdo__fmt(path, sizeof(path), "%s/%.2s/%s", exec_files_dir, k->hex, k->hex);
  return damage_file(path, how, off);
}
