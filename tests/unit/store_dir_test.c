/* SPDX-License-Identifier: MIT */
/*
 * The dir: and mem: backends' side of the store suite: their URLs and
 * their damage hook (an entry is a file).
 * test_store.c includes this file; the helpers are test_store.c's.
 */

static const char *dir_url(const char *dir, char *buf, size_t len)
{
  cdo__fmt(buf, len, "dir:%s/d", dir);
  return NULL;
}

/* mem: on a private runtime directory inside dir. */
static const char *mem_url(const char *dir, char *buf, size_t len)
{
  char run[4200];

  cdo__fmt(run, sizeof(run), "%s/run", dir);
  if (mkdir(run, 0700) < 0 || setenv("XDG_RUNTIME_DIR", run, 1) < 0)
    return "cannot make a runtime directory";
  cdo__fmt(buf, len, "mem:");
  return NULL;
}

/* Edits k's file (store_dir.c). */
static int dir_damage(const char *url, const struct cdo__key *k,
                      enum damage how, uint64_t off)
{
  char path[4400];

  if (strncmp(url, "dir:", 4) == 0)
    cdo__fmt(path, sizeof(path), "%s/v1/%.2s/%s", url + 4, k->hex, k->hex);
  else
    cdo__fmt(path, sizeof(path), "%s/cachedo/v1/%.2s/%s",
             getenv("XDG_RUNTIME_DIR"), k->hex, k->hex);
  return damage_file(path, how, off);
}
