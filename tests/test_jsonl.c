/* jsonl: line numbers, blank and CRLF lines, long lines, bad JSON, invalid UTF-8, the writer and its reals. */
#include <check.h>
#include <math.h>
#include <stdint.h>
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

/* The text jsonl_write gives v, without the newline (free it). */
static char *written(const json_t *v) {
    FILE *f = tmpfile();
    ck_assert_int_eq(jsonl_write(f, v), ERR_OK);
    long n = ftell(f);
    rewind(f);
    char *s = xmalloc((size_t)n + 1);
    ck_assert_int_eq((long)fread(s, 1, (size_t)n, f), n);
    fclose(f);
    ck_assert(n > 0 && s[n - 1] == '\n');
    s[n - 1] = '\0';
    return s;
}

/* Write {"v": x} and read it back: the same double, bit for bit. */
static void assert_round_trip(double x) {
    json_t *v = json_pack("{sf}", "v", x);
    char *s = written(v);
    json_t *w = json_loads(s, 0, NULL);
    ck_assert_msg(w && json_is_real(json_object_get(w, "v")), "%s", s);
    ck_assert_msg(json_real_value(json_object_get(w, "v")) == x, "%.17g written as %s", x, s);
    json_decref(w);
    json_decref(v);
    free(s);
}

START_TEST(test_reals_shortest_exact) {
    /* A double from a config (temperature 0.7) prints as 0.7, not jansson's 0.69999999999999996; a
     * float32 score promoted to double needs more digits and keeps them; integers stay integers, a
     * whole real keeps its ".0", exponents lose '+' and leading zeros, strings are left alone. */
    float score = 0.1f;
    json_t *v = json_pack("{sf sf sf sf sf sf sf si ss s[ff]}", "temperature", 0.7, "top_p", 0.9, "score", (double)score,
                          "whole", 1.0, "big", 1e300, "small", -2.5e-7, "third", 1.0 / 3, "n", 7, "text",
                          "0.69999999999999996 \"x\\\" 1e+05", "list", 0.25, -0.7);
    char *s = written(v);
    ck_assert_str_eq(s, "{\"temperature\":0.7,\"top_p\":0.9,\"score\":0.10000000149011612,\"whole\":1.0,"
                        "\"big\":1e300,\"small\":-2.5e-7,\"third\":0.3333333333333333,\"n\":7,"
                        "\"text\":\"0.69999999999999996 \\\"x\\\\\\\" 1e+05\",\"list\":[0.25,-0.7]}");
    json_t *w = json_loads(s, 0, NULL);
    ck_assert(json_equal(v, w)); /* every real reads back as the same double */
    ck_assert(json_real_value(json_object_get(w, "temperature")) == 0.7);
    ck_assert((float)json_real_value(json_object_get(w, "score")) == score);
    json_decref(w);
    json_decref(v);
    free(s);
    /* jsonl_dumps is the same text, whatever JSON_REAL_PRECISION the caller asks for */
    v = json_pack("{sf}", "x", 0.1 + 0.2);
    s = jsonl_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(3));
    ck_assert_str_eq(s, "{\"x\":0.30000000000000004}");
    free(s);
    json_decref(v);
}
END_TEST

START_TEST(test_reals_round_trip) {
    /* doubles of every magnitude, float32 values promoted to double, and the awkward ones */
    const double edge[] = {0.7, 0.1 + 0.2, 1e15, 1e16, 123456789012345678.0, 9007199254740993.0, 5e-324,
                           2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 1e-5, 1e21, 0.5};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) assert_round_trip(edge[i]);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        double d;
        memcpy(&d, &x, sizeof d);
        if (isfinite(d)) assert_round_trip(d);
        float f;
        uint32_t lo = (uint32_t)x;
        memcpy(&f, &lo, sizeof f);
        if (isfinite(f)) assert_round_trip((double)f);
        assert_round_trip((double)(x >> 11) / 9007199254740992.0 * 10 - 5); /* uniform in [-5, 5) */
    }
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
    tcase_add_test(tc, test_reals_shortest_exact);
    tcase_add_test(tc, test_reals_round_trip);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_stream_name);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
