/*
 * err — how library calls report failure.
 *
 * A call that can fail for an outside reason (a file, the database, a config, user input) returns
 * an Err code and leaves a one-line message, retrievable with err_msg(), that names what it concerns
 * ("configs/sft.yaml:12: unknown key 'lr'"). The code doubles as the process exit code, so a
 * program's main can end with `return rc;`:
 *
 *     if ((rc = store_open(&db, path)) != ERR_OK) { fprintf(stderr, "prefs_db: %s\n", err_msg()); return rc; }
 *
 * The message is per thread. Internal invariants are not errors: they use ASSERT from util.h.
 */
#ifndef RLHF_ERR_H
#define RLHF_ERR_H

typedef enum {
    ERR_OK = 0,
    ERR_RUNTIME = 1, /* the world failed us: I/O, out of memory, database busy too long */
    ERR_INPUT = 2,   /* the user's input or usage is wrong: bad file, bad flag, bad config */
} Err;

/* Record the message for the calling thread and return code, so `return err_set(ERR_INPUT, ...)`. */
Err err_set(Err code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with more context ("loading model: " + old message); returns code. */
Err err_prefix(Err code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message set on this thread ("" if none). */
const char *err_msg(void);

#endif
