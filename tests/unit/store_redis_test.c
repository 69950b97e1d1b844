/* SPDX-License-Identifier: MIT */
/*
 * The Redis backend's side of the store suite: its URL (a server of its
 * own), its damage hook and how a lease is lost.
 * test_store.c includes this file; the helpers are test_store.c's.
 */

/*
 * CACHEDO_TEST_REDIS_URL, else a server of our own on a unix socket in dir,
 * started by tests/e2e/redis.sh (run from the top of the tree, as make does)
 * and stopped at exit.
 */
static pid_t redis_pid;

/* By pid: the temp dir, pid file included, may be gone by then. */
static void redis_stop_own(void)
{
  if (redis_pid > 0) {
    kill(redis_pid, SIGCONT); /* a frozen server cannot exit */
    kill(redis_pid, SIGTERM);
  }
}

static const char *redis_url(const char *dir, char *buf, size_t len)
{
  const char *env = getenv("CACHEDO_TEST_REDIS_URL");
  char cmd[4300], line[4300], redis_dir[4200], *u;
  FILE *f;

  if (env != NULL && *env) {
    cdo__fmt(buf, len, "%s", env);
    return NULL;
  }
  if (system("command -v redis-server >/dev/null 2>&1") != 0)
    return "no redis-server, and CACHEDO_TEST_REDIS_URL is unset";
  cdo__fmt(redis_dir, sizeof(redis_dir), "%s/redis", dir);
  cdo__fmt(cmd, sizeof(cmd), "sh tests/e2e/redis.sh start '%s'", redis_dir);
  f = popen(cmd, "r");
  if (f == NULL || fgets(line, sizeof(line), f) == NULL ||
      (u = strstr(line, "REDIS_URL=")) == NULL) {
    if (f != NULL)
      pclose(f);
    return "cannot start redis-server (tests/e2e/redis.sh)";
  }
  pclose(f);
  if (strstr(line, "REDIS_PID=") != NULL)
    redis_pid = (pid_t)strtol(strstr(line, "REDIS_PID=") + 10, NULL, 10);
  atexit(redis_stop_own);
  u += strlen("REDIS_URL=");
  cdo__fmt(buf, len, "%.*s", (int)strcspn(u, " \n"), u);
  return NULL;
}

/* Rewrites the entry's key on the server: one byte flipped, or cut. */
static int redis_damage(const char *url, const struct cdo__key *k,
                        enum damage how, uint64_t off)
{
  redisContext *c;
  redisReply *rep = NULL;
  char name[128];
  int ok = 0;

  if (strncmp(url, "unix://", 7) == 0)
    c = redisConnectUnix(url + 7);
  else
    return -1; /* a TCP URL: not needed by the suite */
  cdo__fmt(name, sizeof(name), "cachedo:v1::%s", k->hex);
  if (c != NULL && !c->err)
    rep = redisCommand(c, "GETRANGE %s %llu %llu", name,
                       how == FLIP ? (unsigned long long)off : 0ULL,
                       how == FLIP ? (unsigned long long)off
                                   : (unsigned long long)off - 1);
  if (rep != NULL && how == TRUNCATE && off == 0) {
    redisReply *w = redisCommand(c, "SET %s %b KEEPTTL", name, "", (size_t)0);

    ok = w != NULL && w->type != REDIS_REPLY_ERROR;
    freeReplyObject(w);
  } else if (rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len > 0) {
    redisReply *w;

    if (how == FLIP) {
      rep->str[0] ^= 1;
      w = redisCommand(c, "SETRANGE %s %llu %b", name, (unsigned long long)off,
                       rep->str, (size_t)1);
    } else {
      w = redisCommand(c, "SET %s %b KEEPTTL", name, rep->str, rep->len);
    }
    ok = w != NULL && w->type != REDIS_REPLY_ERROR;
    freeReplyObject(w);
  }
  freeReplyObject(rep);
  redisFree(c);
  if (!ok)
    print_error("cannot damage the entry %s\n", name);
  return ok ? 0 : -1;
}

/* The lease of k's lock runs out: its key goes, as PX would make it. */
static int redis_lose_lock(const char *url, const struct cdo__key *k)
{
  redisContext *c;
  redisReply *rep = NULL;
  char name[128];

  if (strncmp(url, "unix://", 7) != 0)
    return -1; /* a TCP URL: not needed by the suite */
  c = redisConnectUnix(url + 7);
  cdo__fmt(name, sizeof(name), "cachedo:v1::%s:lock", k->hex);
  if (c != NULL && !c->err)
    rep = redisCommand(c, "DEL %s", name);
  if (rep == NULL || rep->type != REDIS_REPLY_INTEGER || rep->integer != 1)
    print_error("cannot remove the lock %s\n", name);
  freeReplyObject(rep);
  redisFree(c);
  return rep != NULL ? 0 : -1;
}
