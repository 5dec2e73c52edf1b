/* trainlog — metrics TSV + store, progress on stderr, the stop flag. See trainlog.h. */
#include "trainlog.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* ---- metrics ----------------------------------------------------------------------------------- */

static Err make_dirs(const char *dir) {
    char *p = xstrdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            Err rc = err_set(ERR_RUNTIME, "%s: cannot create: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *s = '/';
    }
    Err rc = ERR_OK;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = err_set(ERR_RUNTIME, "%s: cannot create: %s", p, strerror(errno));
    free(p);
    return rc;
}

/* The lines of an existing TSV whose step is <= keep_step, header included, as one string. */
static char *kept_lines(FILE *f, int64_t keep_step) {
    char *out = xmalloc(1);
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int first = 1;
    while ((len = getline(&line, &cap, f)) > 0) {
        int keep = first; /* the header */
        if (!first) {
            char *end;
            long long step = strtoll(line, &end, 10);
            keep = end != line && *end == '\t' && step <= keep_step;
        }
        first = 0;
        if (!keep) continue;
        out = xrealloc(out, n + (size_t)len + 1);
        memcpy(out + n, line, (size_t)len);
        n += (size_t)len;
    }
    free(line);
    out[n] = '\0';
    return out;
}

Err trainlog_open(TrainLog *log, const char *out_dir, int64_t resume_step, Store *db, int64_t run_id) {
    memset(log, 0, sizeof *log);
    Err rc = make_dirs(out_dir);
    if (rc != ERR_OK) return rc;
    size_t n = strlen(out_dir) + sizeof "/metrics.tsv";
    log->path = xmalloc(n);
    snprintf(log->path, n, "%s/metrics.tsv", out_dir);
    char *keep = NULL;
    if (resume_step >= 0) {
        FILE *old = fopen(log->path, "r");
        if (old) {
            keep = kept_lines(old, resume_step);
            fclose(old);
        }
    }
    log->tsv = fopen(log->path, "w");
    if (!log->tsv) {
        rc = err_set(ERR_RUNTIME, "%s: cannot write: %s", log->path, strerror(errno));
        free(keep);
        free(log->path);
        log->path = NULL;
        return rc;
    }
    if (keep && *keep) fputs(keep, log->tsv);
    else fputs("step\tname\tvalue\n", log->tsv);
    free(keep);
    fflush(log->tsv);
    log->db = db;
    log->run_id = run_id;
    return ERR_OK;
}

Err trainlog_metric(TrainLog *log, int64_t step, const char *name, double value) {
    /* %.9g round-trips a float32 exactly, which is all a float32 trainer produces */
    if (log->tsv && (fprintf(log->tsv, "%" PRId64 "\t%s\t%.9g\n", step, name, value) < 0 || fflush(log->tsv) != 0))
        return err_set(ERR_RUNTIME, "%s: write failed: %s", log->path, strerror(errno));
    if (log->db) return store_metric_put(log->db, log->run_id, step, name, value);
    return ERR_OK;
}

void trainlog_close(TrainLog *log) {
    if (log->tsv) fclose(log->tsv);
    free(log->path);
    memset(log, 0, sizeof *log);
}

/* ---- progress ---------------------------------------------------------------------------------- */

double trainlog_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void trainlog_progress_start(Progress *p, const char *prog, int64_t start_step, int64_t total, double interval) {
    memset(p, 0, sizeof *p);
    p->prog = prog;
    p->total = total;
    p->start_step = start_step;
    p->t0 = p->last = trainlog_now();
    p->interval = interval;
    p->tty = isatty(STDERR_FILENO);
}

static void format_secs(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

void trainlog_progress(Progress *p, int64_t step, int64_t tokens, double loss, double lr) {
    p->tokens += tokens;
    double now = trainlog_now();
    int last_step = step >= p->total;
    /* a terminal is redrawn often but not every step of a fast run; plain lines every interval */
    if (!last_step && now - p->last < (p->tty ? 0.2 : p->interval)) return;
    p->last = now;
    double el = now - p->t0;
    int64_t done = step - p->start_step;
    double tps = el > 0 ? (double)p->tokens / el : 0;
    double eta = done > 0 ? el / (double)done * (double)(p->total - step) : -1;
    char eta_s[32], el_s[32];
    format_secs(eta_s, sizeof eta_s, eta);
    format_secs(el_s, sizeof el_s, el);
    if (p->tty) {
        enum { W = 24 };
        int fill = p->total > 0 ? (int)(W * step / p->total) : W;
        char bar[W + 1];
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = '\0';
        fprintf(stderr, "\r%s [%s] %" PRId64 "/%" PRId64 " loss %.4f lr %.2e %.0f tok/s %s ETA %s  ", p->prog, bar,
                step, p->total, loss, lr, tps, el_s, eta_s);
    } else {
        fprintf(stderr, "%s: step %" PRId64 "/%" PRId64 " loss %.4f lr %.2e %.0f tok/s elapsed %s ETA %s\n", p->prog,
                step, p->total, loss, lr, tps, el_s, eta_s);
    }
    fflush(stderr);
}

void trainlog_progress_end(Progress *p, int64_t step) {
    double el = trainlog_now() - p->t0;
    if (p->tty) fputc('\n', stderr);
    char el_s[32];
    format_secs(el_s, sizeof el_s, el);
    fprintf(stderr, "%s: %" PRId64 " steps, %" PRId64 " tokens in %s, %.0f tok/s\n", p->prog, step - p->start_step,
            p->tokens, el_s, el > 0 ? (double)p->tokens / el : 0.0);
}

/* ---- stop flag --------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    stop_flag = 1;
    signal(sig, SIG_DFL); /* the second signal kills */
}

void trainlog_catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool trainlog_stop_requested(void) { return stop_flag != 0; }

void trainlog_request_stop(void) { stop_flag = 1; }
