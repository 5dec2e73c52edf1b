/* jsonl: line numbers, blank and CRLF lines, long lines, bad JSON, invalid UTF-8, the writer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonl.h"
#include "testutil.h"
#include "util.h"

/* Write n bytes to a fresh temporary file and return its path (free it). */
static char *tmp_file(const char *bytes, size_t n) {
    char *path = xstrdup("/tmp/test_jsonl_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq((int)write(fd, bytes, n), (int)n);
    close(fd);
    return path;
}

/* A reader over a temporary file holding bytes; *path is the file (unlink and free it). */
static JsonlReader *open_text(const char *bytes, size_t n, char **path) {
    *path = tmp_file(bytes, n);
    JsonlReader *r;
    ck_assert_int_eq(jsonl_open(&r, *path), ERR_OK);
    return r;
}

START_TEST(test_lines_numbers_blank_crlf) {
    const char text[] = "{\"a\":1}\n\n   \n{\"a\":2}\r\n[3]";
    char *path;
    JsonlReader *r = open_text(text, sizeof text - 1, &path);
    json_t *v;
    int64_t line;
    ck_assert_int_eq(jsonl_next(r, &v, &line), ERR_OK);
    ck_assert_int_eq(line, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "a")), 1);
    json_decref(v);
    ck_assert_int_eq(jsonl_next(r, &v, &line), ERR_OK);
    ck_assert_int_eq(line, 4); /* blank lines count */
    ck_assert_int_eq(json_integer_value(json_object_get(v, "a")), 2);
    json_decref(v);
    ck_assert_int_eq(jsonl_next(r, &v, &line), ERR_OK); /* last line without '\n' */
    ck_assert_int_eq(line, 5);
    ck_assert(json_is_array(v));
    json_decref(v);
    ck_assert_int_eq(jsonl_next(r, &v, &line), ERR_OK);
    ck_assert_ptr_null(v);
    jsonl_close(r);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_bad_lines_name_file_and_line_then_continue) {
    /* line 2: trailing garbage, line 3: invalid UTF-8, line 4: a NUL byte, line 5: fine */
    const char text[] = "{\"a\":1}\n{\"a\":1} x\n{\"a\":\"\xff\xfe\"}\n{\"a\":\0}\n{\"b\":5}\n";
    char *path;
    JsonlReader *r = open_text(text, sizeof text - 1, &path);
    json_t *v;
    int64_t line;
    ck_assert_int_eq(jsonl_next(r, &v, &line), ERR_OK);
    json_decref(v);
    for (int want = 2; want <= 4; want++) {
        ck_assert_int_eq(jsonl_next(r, &v, &line), ERR_INPUT);
        ck_assert_ptr_null(v);
        char prefix[256];
        snprintf(prefix, sizeof prefix, "%s:%d: invalid JSON", path, want);
        ck_assert_msg(strncmp(err_msg(), prefix, strlen(prefix)) == 0, "line %d: %s", want, err_msg());
    }
    ck_assert_int_eq(jsonl_next(r, &v, &line), ERR_OK);
    ck_assert_int_eq(line, 5);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "b")), 5);
    json_decref(v);
    jsonl_close(r);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_long_line_and_writer_round_trip) {
    size_t n = 3 << 20; /* 3 MB, far beyond any fixed buffer */
    char *big = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
    big[n] = 0;
    big[17] = '\n'; /* newlines inside strings must not split the record */
    json_t *v = json_pack("{sssss[i]}", "text", big, "uni", "caf\xc3\xa9 \xe2\x82\xac", "k", 7);
    char *path = xstrdup("/tmp/test_jsonl_XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    ck_assert_int_eq(jsonl_write(f, v), ERR_OK);
    ck_assert_int_eq(jsonl_write(f, v), ERR_OK);
    fclose(f);
    JsonlReader *r;
    ck_assert_int_eq(jsonl_open(&r, path), ERR_OK);
    for (int k = 1; k <= 2; k++) {
        json_t *w;
        int64_t line;
        ck_assert_int_eq(jsonl_next(r, &w, &line), ERR_OK);
        ck_assert_int_eq(line, k);
        ck_assert(json_equal(v, w));
        json_decref(w);
    }
    jsonl_close(r);
    json_decref(v);
    free(big);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_missing_file) {
    JsonlReader *r;
    ck_assert_int_eq(jsonl_open(&r, "/nonexistent/x.jsonl"), ERR_INPUT);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(err_msg(), "/nonexistent/x.jsonl"));
}
END_TEST

START_TEST(test_stream_name) {
    FILE *f = tmpfile();
    fputs("oops\n", f);
    rewind(f);
    JsonlReader *r = jsonl_from_file(f, "<stdin>");
    json_t *v;
    int64_t line;
    ck_assert_int_eq(jsonl_next(r, &v, &line), ERR_INPUT);
    ck_assert_msg(strncmp(err_msg(), "<stdin>:1: ", 11) == 0, "%s", err_msg());
    jsonl_close(r);
    fclose(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("jsonl");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_lines_numbers_blank_crlf);
    tcase_add_test(tc, test_bad_lines_name_file_and_line_then_continue);
    tcase_add_test(tc, test_long_line_and_writer_round_trip);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_stream_name);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
