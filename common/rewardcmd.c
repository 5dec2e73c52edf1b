/*
 * rewardcmd — see rewardcmd.h.
 */
#include "rewardcmd.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jsonl.h"
#include "util.h"

/* A new empty file from the template dir/rlhf_reward_XXXXXX; *path is malloc'ed. */
static Err temp_file(char **path, FILE **f, const char *mode) {
    const char *dir = getenv("TMPDIR");
    *path = xasprintf("%s/rlhf_reward_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(*path);
    if (fd < 0) {
        Err rc = err_set(ERR_RUNTIME, "reward command: cannot create a temporary file %s: %s", *path, strerror(errno));
        free(*path);
        *path = NULL;
        return rc;
    }
    if (!(*f = fdopen(fd, mode))) {
        close(fd);
        unlink(*path);
        free(*path);
        *path = NULL;
        return err_set(ERR_RUNTIME, "reward command: fdopen: %s", strerror(errno));
    }
    return ERR_OK;
}

json_t *reward_cmd_record(const json_t *dialogue, const char *system, const char *text) {
    json_t *prompt = json_pack("{s:O}", "dialogue", dialogue);
    if (system && *system) json_object_set_new(prompt, "system", json_string(system));
    json_t *rec = json_pack("{s:s, s:o, s:s}", "type", "response", "prompt", prompt, "text", text);
    ASSERT(rec);
    return rec;
}

static Err write_records(FILE *f, const json_t *const *dialogues, const char *const *systems, const char *const *texts,
                         int n) {
    Err rc = ERR_OK;
    for (int i = 0; !rc && i < n; i++) {
        json_t *rec = reward_cmd_record(dialogues[i], systems ? systems[i] : NULL, texts[i]);
        rc = jsonl_write(f, rec);
        json_decref(rec);
    }
    if (!rc && fflush(f) != 0) rc = err_set(ERR_RUNTIME, "reward command: writing its input: %s", strerror(errno));
    return rc;
}

/* One reward from a line's value: a number, or an object with a numeric "reward". */
static Err read_reward(const json_t *v, int64_t line, float *out) {
    const json_t *r = json_is_object(v) ? json_object_get(v, "reward") : v;
    if (!json_is_number(r))
        return err_set(ERR_INPUT, "reward command: output line %" PRId64 ": expected a number or an object with a "
                       "numeric \"reward\"", line);
    double x = json_number_value(r);
    if (!isfinite(x) || fabs(x) > FLT_MAX)
        return err_set(ERR_INPUT, "reward command: output line %" PRId64 ": reward %g is not a finite float", line, x);
    *out = (float)x;
    return ERR_OK;
}

/* The command's output: one value per non-blank line (jsonl.h's readers take objects and arrays only,
 * and a bare number is what `awk '{print ...}'` writes), line numbers as an editor shows them. */
static Err read_rewards(const char *path, int n, float *scores) {
    FILE *f = fopen(path, "r");
    if (!f) return err_set(ERR_RUNTIME, "reward command: cannot read its output %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t got = 0, line = 0;
    Err rc = ERR_OK;
    while (!rc && (len = getline(&buf, &cap, f)) >= 0) {
        line++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
            buf[--len] = 0;
        if (len == 0) continue;
        json_error_t je;
        json_t *v = json_loads(buf, JSON_DECODE_ANY, &je);
        if (!v) rc = err_set(ERR_INPUT, "reward command: output line %" PRId64 ": not JSON: %s", line, je.text);
        else if (got < n) rc = read_reward(v, line, &scores[got]);
        got++;
        json_decref(v);
    }
    free(buf);
    fclose(f);
    if (!rc && got != n)
        rc = err_set(ERR_INPUT, "reward command: %" PRId64 " rewards for %d answers (one line per answer, in order)", got, n);
    return rc;
}

Err reward_cmd_score(const char *cmd, const json_t *const *dialogues, const char *const *systems,
                     const char *const *texts, int n, float *scores) {
    if (n == 0) return ERR_OK;
    char *in_path = NULL, *out_path = NULL, *sh = NULL;
    FILE *in = NULL, *out = NULL;
    Err rc = temp_file(&in_path, &in, "w");
    if (!rc) rc = temp_file(&out_path, &out, "w");
    if (!rc) rc = write_records(in, dialogues, systems, texts, n);
    if (in) fclose(in);
    if (out) fclose(out);
    if (!rc) {
        /* the paths come from mkstemp on TMPDIR: quoted for the shell, a ' in TMPDIR is refused */
        if (strchr(in_path, '\'') || strchr(out_path, '\''))
            rc = err_set(ERR_RUNTIME, "reward command: TMPDIR must not contain a quote (%s)", in_path);
    }
    if (!rc) {
        fflush(NULL);
        sh = xasprintf("(%s) <'%s' >'%s'", cmd, in_path, out_path);
        int st = system(sh);
        if (st == -1)
            rc = err_set(ERR_RUNTIME, "reward command: cannot run /bin/sh: %s", strerror(errno));
        else if (!WIFEXITED(st))
            rc = err_set(ERR_RUNTIME, "reward command '%s' was killed by signal %d", cmd, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        else if (WEXITSTATUS(st) != 0)
            rc = err_set(ERR_RUNTIME, "reward command '%s' failed (exit status %d)", cmd, WEXITSTATUS(st));
    }
    if (!rc) rc = read_rewards(out_path, n, scores);
    if (in_path) unlink(in_path);
    if (out_path) unlink(out_path);
    free(in_path);
    free(out_path);
    free(sh);
    return rc;
}
