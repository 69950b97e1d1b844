/* SPDX-License-Identifier: MIT */
/*
 * One invocation: the job's lifecycle and the cache sequence around its
 * command: look up, take the run lock (or wait for the run that holds it),
 * run (run.c), store, record for --stats, and refresh in the background.
 */
#include "job.h"
#include "store_int.h"

#include <fcntl.h>
#include <unistd.h>

/* ---- the job's lifecycle ----------------------------------------------- */

int cdo_job_new(struct cdo_job **out, const struct cdo_config *cfg,
                char *const argv[], char *const envp[], cdo_msg_fn msg,
                void *ud, char *err, size_t errlen)
{
  struct cdo_job *j = calloc(1, sizeof(*j));
  int r;

  *out = NULL;
  if (j == NULL)
    return CDO__ERR(ENOMEM);
  j->cfg = cfg;
  j->argv = argv;
  j->start_ms = cdo__now_ms();
  j->msg = msg;
  j->ud = ud;
  j->stdin_fd = -1;
  if (argv == NULL || argv[0] == NULL) {
    cdo__fmt(err, errlen, "no command given");
    r = CDO_EBADVALUE;
    goto fail;
  }
  r = cdo__key_gather(j, envp, err, errlen);
  if (r < 0)
    goto fail;
  *out = j;
  return 0;
fail:
  if (r == CDO__ERR(ENOMEM))
    cdo__fmt(err, errlen, "out of memory");
  cdo_job_free(j);
  return r;
}

void cdo_job_free(struct cdo_job *j)
{
  if (j == NULL)
    return;
  free(j->exe);
  free(j->exe_real);
  free(j->exe_err);
  free(j->cwd);
  free(j->uncacheable);
  free(j->env);
  free(j->env_nl);
  free(j->files);
  if (j->stdin_fd >= 0)
    close(j->stdin_fd);
  cdo__upkeep_drop(j->upkeep);
  cdo__explain_drop(j->explain);
  free(j);
}

const char *cdo_job_key(const struct cdo_job *j)
{
  return j->key.hex;
}

/* ---- running and storing ------------------------------------------------ */

/* Stores the finished entry of run; returns 0 or the backend's error. */
static int store_result(struct cdo_job *j, struct cdo_store *s,
                        const struct cdo__run *run)
{
  const struct cdo_config *c = j->cfg;
  const struct cdo__meta *m = &run->w.meta;
  struct cdo__put_info info;
  char *command = cdo__argv_render(j->argv);
  int r;

  if (command == NULL)
    return CDO__ERR(ENOMEM);
  info.created_ms = m->created_ms;
  info.expires_ms = m->expires_ms;
  info.duration_ms = m->duration_ms;
  info.exit_status = m->exit_status;
  info.command = command;
  info.scope = c->scope;
  r = cdo__store_put(s, &j->key, &run->src, &info);
  free(command);
  return r;
}

/* Why a result that ran recorded is not to be stored; NULL: store it. */
static const char *not_stored(const struct cdo_job *j,
                              const struct cdo__run *run, int keep_good,
                              char *buf, size_t len)
{
  if (run->term_signal)
    cdo__fmt(buf, len, "killed by signal %d", run->term_signal);
  else if (run->interrupted)
    cdo__fmt(buf, len, "interrupted by signal %d", run->interrupted);
  else if (!run->recorded)
    cdo__fmt(buf, len, "%s", run->reason);
  else if (run->exit_status != 0 &&
           cdo__entry_ttl(j->cfg, run->exit_status) == 0)
    cdo__fmt(buf, len, "exit status %d and failures are not cached",
             run->exit_status);
  else if (run->exit_status != 0 && keep_good)
    cdo__fmt(buf, len, "exit status %d; the stored successful result is kept",
             run->exit_status);
  else
    return NULL;
  return buf;
}

/* The lease of the run lock, renewed while the command runs. */
struct lease {
  struct cdo_job *j;
  struct cdo_store *s;
  void *lk;
};

/*
 * While the command runs: what the store of its result will need, and
 * the explain record that follows it.
 */
static void prime_store(void *ud)
{
  struct lease *l = ud;

  cdo__store_prime(l->s);
  cdo__explain_prepare(l->j, l->s);
}

static int renew_lease(void *ud)
{
  struct lease *l = ud;
  int r = cdo__store_lock_renew(l->s, &l->j->key, l->lk);

  if (r < 0)
    cdo__job_msg(l->j, 1, "lost the lock of this run: %s",
                 cdo_store_errmsg(l->s));
  return r;
}

/*
 * Runs the command (recording when s is non-NULL) and fills res; lk, the
 * run lock held (or NULL), is renewed while it runs. With keep_good, a
 * failing run does not replace a stored successful one (stale-if-error).
 * Returns 0, or the code of the store's failure to keep the result.
 */
static int run_command(struct cdo_job *j, struct cdo_store *s, void *lk,
                       struct cdo_result *res, int keep_good)
{
  struct cdo__run run;
  struct lease lease = {j, s, lk};
  int r, failure = 0;

  memset(&run, 0, sizeof(run));
  run.record = s != NULL;
  run.spool_dir = s != NULL ? cdo__store_spool_dir(s) : NULL;
  run.tick = lk != NULL ? renew_lease : NULL;
  run.tick_ud = &lease;
  run.started = s != NULL ? prime_store : NULL;
  run.started_ud = &lease;
  r = cdo__run(j, &run);
  if (run.uncached)
    s = NULL;
  res->outcome = s ? CDO_MISS_NOT_STORED : CDO_UNCACHED;
  if (r > 0) {
    res->exit_status = r;
    res->outcome = CDO_UNCACHED;
    cdo__fmt(res->error, sizeof(res->error), "%s", run.error);
  } else {
    res->exit_status = run.exit_status;
    res->term_signal = run.term_signal;
  }
  if (r > 0)
    ; /* it did not run */
  else if (s == NULL) {
    if (res->reason[0] == 0) /* else the caller said why */
      cdo__fmt(res->reason, sizeof(res->reason), "%s",
               run.reason[0] ? run.reason : "cache disabled");
  } else if (not_stored(j, &run, keep_good, res->reason, sizeof(res->reason)))
    ; /* res->reason says why */
  else if ((r = store_result(j, s, &run)) == CDO_EVANISHED)
    /* A race the user caused (--clear): no warning, no error counted. */
    cdo__fmt(res->reason, sizeof(res->reason), "%s", cdo_store_errmsg(s));
  else if (r < 0) {
    cdo__job_msg(
        j, 0, "warning: cannot store the result in '%s': %s", cdo_store_url(s),
        cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s) : cdo_strerror(r));
    cdo__fmt(res->reason, sizeof(res->reason), "%s", cdo_strerror(r));
    failure = r;
  } else
    res->outcome = CDO_MISS_STORED;
  cdo__run_release(&run);
  return failure;
}

/* ---- the cache sequence -------------------------------------------------- */

/*
 * Replays a verified entry, fills res as a hit (or a stale answer) and
 * counts it, with the time the original run took as the time saved.
 */
static void replay(struct cdo_job *j, struct cdo_store *s, struct cdo__blob *b,
                   const struct cdo__meta *m, uint64_t joff,
                   enum cdo_outcome outcome, struct cdo_result *res)
{
  /* A hit that waited for the run it replays saved only what is left. */
  struct cdo__usage u = {
      0, m->duration_ms - res->waited_ms, outcome, -1, &j->key, res->waited_ms};

  cdo__entry_replay(b, m, joff);
  cdo__blob_free(b);
  res->outcome = outcome;
  res->exit_status = m->exit_status;
  res->age_ms = cdo__now_ms() - m->created_ms;
  if (s->answered != NULL) { /* a cache of tiers: the one that answered */
    cdo__fmt(res->tier, sizeof(res->tier), "%s", cdo_store_url(s->answered));
    s = s->answered;
  }
  cdo__store_record_usage(s, &u);
}

/*
 * Replays k's entry if it is fresh now and was stored at since_ms or later;
 * 1 when it did, else 0.
 */
static int replay_if_fresh(struct cdo_job *j, struct cdo_store *s,
                           int64_t since_ms, struct cdo_result *res)
{
  struct cdo__blob *b = NULL;
  struct cdo__meta m;
  uint64_t joff;
  int r = cdo__store_lookup(s, &j->key, &b, &m, &joff);

  if (r == CDO__FRESH && m.created_ms >= since_ms) {
    replay(j, s, b, &m, joff, CDO_HIT, res);
    return 1;
  }
  cdo__blob_free(b);
  return 0;
}

/*
 * Single-flight. Takes the key's run lock, or waits for the run that holds
 * it and replays its result. Returns 1 when this process holds the lock
 * (*lk) and must run the command, 0 when res was filled by a replay, or -1
 * when the command should run uncached (gave up waiting, or locks fail).
 */
static int single_flight(struct cdo_job *j, struct cdo_store *s, void **lk,
                         struct cdo_result *res)
{
  const struct cdo_config *c = j->cfg;
  int64_t start = cdo__mono_ms(), waited = 0, since = INT64_MIN;
  int r, contended = 0, status_shown = 0;
  long pid = 0;
  char elapsed[32];

  for (;;) {
    int64_t left = c->lock_timeout_ms - waited;

    r = cdo__store_lock(s, &j->key, contended ? (left < 1000 ? left : 1000) : 0,
                        lk);
    waited = cdo__mono_ms() - start;
    if (r == 0)
      break;
    if (r != CDO__ERR(EAGAIN)) {
      cdo__job_msg(j, 1,
                   "cannot lock '%s': %s; running without waiting for "
                   "identical runs",
                   cdo_store_url(s),
                   cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s)
                                          : cdo_strerror(r));
      *lk = NULL;
      return 1;
    }
    if (!contended)
      pid = cdo__store_lock_holder(s, &j->key);
    contended = 1;
    if (waited >= c->lock_timeout_ms) {
      if (status_shown)
        cdo__job_msg(j, 3, "%s", "");
      cdo_format_duration(waited, elapsed, sizeof(elapsed));
      cdo__job_msg(j, 0,
                   "warning: gave up waiting for an identical run "
                   "after %s; running uncached",
                   elapsed);
      return -1;
    }
    if (waited >= 1000) {
      pid = cdo__store_lock_holder(s, &j->key);
      cdo_format_duration(waited, elapsed, sizeof(elapsed));
      if (pid > 0)
        cdo__job_msg(j, 2, "waiting for '%s' (pid %ld), %s", j->argv[0], pid,
                     elapsed);
      else
        cdo__job_msg(j, 2, "waiting for '%s', %s", j->argv[0], elapsed);
      status_shown = 1;
    }
  }
  if (status_shown)
    cdo__job_msg(j, 3, "%s", "");
  /*
   * Someone may have stored a result between our lookup and the lock, or
   * while we waited: then it is ours to replay. A --refresh replays only a
   * result stored since it started (by an identical --refresh it waited
   * for), never the one it was asked to replace.
   */
  if (contended) { /* a replay then counts the wait, not the time saved */
    res->waited_ms = waited > 0 ? waited : 1;
    res->wait_pid = pid;
  }
  if (c->refresh)
    since = j->start_ms;
  if ((contended || !c->refresh) && replay_if_fresh(j, s, since, res)) {
    cdo__store_unlock(s, &j->key, *lk);
    *lk = NULL;
    return 0;
  }
  res->waited_ms = 0;
  res->wait_pid = 0;
  return 1;
}

/*
 * Stale-while-revalidate: a detached child (own session, stdio on
 * /dev/null, so `x=$(cachedo ...)` does not wait for it) refreshes the
 * entry under the run lock; identical stale hits meanwhile find the lock
 * taken and leave it be. It opens its own store.
 */
static int refresh_detached(struct cdo_job *j, int warm)
{
  struct cdo_store *s = NULL;
  struct cdo_result res;
  char err[300];
  void *lk = NULL;
  pid_t pid;
  int r;

  if (j->cfg->read_only)
    return 0; /* the stale entry is all a read-only cache can give */
  pid = cdo__detach();
  if (pid != 0)
    return pid < 0 ? CDO__ERR(errno) : 0; /* else the entry stays as is */
  j->msg = NULL;
  if (cdo_store_open(&s, j->cfg, err, sizeof(err)) < 0)
    _exit(0);
  r = cdo__store_lock(s, &j->key, 0, &lk);
  if (r == 0) {
    struct cdo__blob *b = NULL;
    struct cdo__meta m;
    uint64_t joff;
    int fresh = cdo__store_lookup(s, &j->key, &b, &m, &joff);

    cdo__blob_free(b);
    /*
     * Fresh again: another refresh finished first, nothing to do, unless
     * warming up. A failing run does not replace a successful result.
     */
    if (fresh != CDO__FRESH || warm)
      run_command(j, s, lk, &res,
                  (fresh == CDO__STALE || fresh == CDO__FRESH) &&
                      m.exit_status == 0);
  }
  cdo__store_unlock(s, &j->key, lk);
  cdo_store_close(s);
  _exit(0);
}

void cdo_job_refresh(struct cdo_job *j)
{
  refresh_detached(j, 0);
}

int cdo_job_warm(struct cdo_job *j, char *err, size_t errlen)
{
  int r;

  if (j->exe_status != 0) {
    cdo__fmt(err, errlen, "%s", j->exe_err);
    return j->exe_status;
  }
  if (j->uncacheable != NULL) {
    cdo__fmt(err, errlen, "cannot warm the cache: %s", j->uncacheable);
    return 1;
  }
  r = refresh_detached(j, 1);
  if (r < 0) {
    cdo__fmt(err, errlen, "cannot start the refresh: %s", cdo_strerror(r));
    return 1;
  }
  return 0;
}

/* Appends one line of cdo__explain_miss() to res->miss_why. */
static void why_note(void *ud, const char *component, const char *detail)
{
  struct cdo_result *res = ud;
  size_t n = strlen(res->miss_why);
  char *p = res->miss_why + n;
  size_t left = sizeof(res->miss_why) - n;
  const char *sep = n ? "; " : "";

  if (strcmp(component, "nearest") != 0)
    cdo__fmt(p, left, "%s%s %s", sep, component, detail);
  else if (strcmp(detail, "none") == 0)
    cdo__fmt(p, left, "%sno entry of this command was stored before", sep);
  else
    cdo__fmt(p, left, "%sthe nearest entry of this command was %s", sep,
             detail);
}

/*
 * A miss of a read-only cache: the command runs uncached, without a lock;
 * why says why the lookup missed, when it knows.
 */
static void run_read_only(struct cdo_job *j, const char *why,
                          struct cdo_result *res)
{
  if (j->cfg->verbose && why != NULL)
    cdo__fmt(res->miss_why, sizeof(res->miss_why), "%s", why);
  run_command(j, NULL, NULL, res, 0);
  if (res->outcome == CDO_UNCACHED && res->error[0] == 0) {
    res->outcome = CDO_MISS_NOT_STORED;
    cdo__fmt(res->reason, sizeof(res->reason), "the cache is read-only");
  }
}

/*
 * The lookup a run starts with: replays a fresh or stale entry (1: res is
 * filled; on CDO_STALE the caller starts cdo_job_refresh()), or misses (0),
 * *why then saying why when it knows, *corrupt whether the entry was
 * damaged. A cache that cannot be read is let go (*sp = NULL) with one
 * warning, and the command runs uncached.
 */
static int look_up(struct cdo_job *j, struct cdo_store **sp, const char **why,
                   int *corrupt, struct cdo_result *res)
{
  struct cdo_store *s = *sp;
  struct cdo__blob *b = NULL;
  struct cdo__meta m;
  uint64_t joff;
  int r = cdo__store_lookup(s, &j->key, &b, &m, &joff);

  if (j->msg != NULL)
    cdo__store_warn_down(s, j->msg, j->ud); /* tiers that failed */
  if (r == CDO__FRESH || r == CDO__STALE) {
    replay(j, s, b, &m, joff, r == CDO__FRESH ? CDO_HIT : CDO_STALE, res);
    return 1;
  }
  if (r < 0) {
    const char *failed =
        cdo_store_errmsg(s)[0] ? cdo_store_errmsg(s) : cdo_strerror(r);

    cdo__job_msg(j, 0, "warning: cannot read cache '%s': %s; running uncached",
                 cdo_store_url(s), failed);
    cdo__fmt(res->reason, sizeof(res->reason), "cannot read the cache: %s",
             failed);
    cdo__store_record(s, &j->key, CDO_UNCACHED, 0, r);
    *sp = NULL;
  } else {
    *why = s->miss_why;
    *corrupt = s->found_corrupt;
  }
  return 0;
}

int cdo_job_run(struct cdo_job *j, struct cdo_store *s, struct cdo_result *res)
{
  void *lk = NULL;
  const char *why = NULL; /* why the lookup missed, when it knows */
  int r, corrupt = 0;

  memset(res, 0, sizeof(*res));
  if (j->cfg->keyless)
    s = NULL; /* no key to look up or store under */
  if (j->exe_status != 0) {
    res->outcome = CDO_UNCACHED;
    res->exit_status = j->exe_status;
    cdo__fmt(res->error, sizeof(res->error), "%s", j->exe_err);
    return 0;
  }
  if (s != NULL && j->uncacheable != NULL) {
    cdo__job_msg(j, 0, "warning: %s; running uncached", j->uncacheable);
    cdo__fmt(res->reason, sizeof(res->reason), "%s", j->uncacheable);
    s = NULL;
  }
  if (s != NULL && j->stdin_unkeyed != NULL)
    cdo__job_msg(j, 1, "stdin: not in the key (%s); use --stdin",
                 j->stdin_unkeyed);
  if (s != NULL && !j->cfg->refresh && look_up(j, &s, &why, &corrupt, res))
    return 0; /* a hit, or a stale answer */
  if (s != NULL && cdo__store_read_only(s)) {
    run_read_only(j, why, res);
    return 0;
  }
  if (s != NULL) {
    r = single_flight(j, s, &lk, res);
    if (r == 0)
      return 0;
    if (r < 0) {
      cdo__store_record(s, &j->key, CDO_UNCACHED, 0, CDO__ERR(ETIMEDOUT));
      cdo__fmt(res->reason, sizeof(res->reason),
               "gave up waiting for an identical run");
      s = NULL;
    }
  }
  if (s != NULL && j->cfg->verbose) { /* why this missed, for -v */
    if (why != NULL)
      cdo__fmt(res->miss_why, sizeof(res->miss_why), "%s", why);
    cdo__explain_miss(j, s, why_note, res);
  }
  r = run_command(j, s, lk, res, 0);
  if (s != NULL) {
    cdo__store_record(s, &j->key, res->outcome, 0,
                      r == 0 && corrupt ? CDO_ECORRUPT : r);
    if (res->outcome == CDO_MISS_STORED)
      cdo__explain_save(j, s);
  }
  if (lk != NULL)
    cdo__store_unlock(s, &j->key, lk);
  if (s != NULL && j->msg != NULL)
    cdo__store_warn_down(s, j->msg, j->ud); /* tiers that failed */
  if (s != NULL && res->outcome == CDO_MISS_STORED && j->upkeep == NULL)
    j->upkeep = cdo__store_maintain(s); /* rate-limited; never on a hit */
  return 0;
}

void cdo_job_upkeep(struct cdo_job *j)
{
  cdo__upkeep_start(j->upkeep);
  j->upkeep = NULL;
}

int cdo_job_forget(struct cdo_job *j, struct cdo_store *s)
{
  return cdo__store_forget(s, &j->key);
}
