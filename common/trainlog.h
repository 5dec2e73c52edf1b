/*
 * trainlog — what every trainer reports while it runs: metrics, progress, and a stop request.
 *
 * Metrics go to two places at once (DESIGN §7): `<out>/metrics.tsv`, a header line
 * "step\tname\tvalue" then one line per value, which gnuplot and awk read directly; and, when the
 * run has a store, the `metrics(run_id, step, name, value)` table. A resumed run opens the TSV with
 * the step it resumes from: lines logged after that step (by the interrupted run, past its last
 * checkpoint) are dropped, so the file of an interrupted-and-resumed run equals an uninterrupted one.
 *
 * Progress goes to stderr: a bar redrawn in place when stderr is a terminal, plain lines at most
 * every `interval` seconds otherwise (logs stay readable), each with the step, the loss, tokens/s
 * and the estimated time left.
 *
 * Stopping: trainlog_catch_signals makes SIGINT and SIGTERM set a flag instead of killing the
 * process; a trainer checks trainlog_stop_requested() after each step, saves a resumable checkpoint
 * and exits. A second signal kills as usual (the handler resets itself), for a user who insists.
 */
#ifndef RLHF_TRAINLOG_H
#define RLHF_TRAINLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "store.h"

typedef struct {
    FILE *tsv;
    char *path;
    Store *db;      /* may be NULL */
    int64_t run_id; /* the store's run, when db is set */
} TrainLog;

/* Open (create) `<out_dir>/metrics.tsv`, creating out_dir if needed. resume_step < 0: start a new
 * file; otherwise keep the existing lines with step <= resume_step and append after them. db may
 * be NULL. ERR_RUNTIME on I/O failure, with the path in the message. */
Err trainlog_open(TrainLog *log, const char *out_dir, int64_t resume_step, Store *db, int64_t run_id);
/* One metric value; written through (flushed), so a crash loses nothing already logged. */
Err trainlog_metric(TrainLog *log, int64_t step, const char *name, double value);
void trainlog_close(TrainLog *log);

typedef struct {
    const char *prog;   /* prefix of each line */
    int64_t total;      /* steps in the run */
    int64_t start_step; /* step the run started (or resumed) at: rates count from here */
    double t0, last;    /* seconds, monotonic */
    double interval;    /* seconds between plain lines */
    bool tty;
    int64_t tokens;     /* tokens processed since start_step */
} Progress;

/* Start a progress display for steps start_step..total. interval: seconds between plain lines. */
void trainlog_progress_start(Progress *p, const char *prog, int64_t start_step, int64_t total, double interval);
/* After step `step` (1-based count of steps done) that processed `tokens` tokens with this loss. */
void trainlog_progress(Progress *p, int64_t step, int64_t tokens, double loss, double lr);
/* End the bar's line (terminal) and print a summary line: steps, tokens, tokens/s, time. */
void trainlog_progress_end(Progress *p, int64_t step);
/* Seconds on the monotonic clock. */
double trainlog_now(void);

/* SIGINT/SIGTERM -> a flag (see the top). */
void trainlog_catch_signals(void);
bool trainlog_stop_requested(void);
/* For tests: raise the flag as a signal would. */
void trainlog_request_stop(void);

#endif
