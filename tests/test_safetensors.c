/* safetensors: bit-exact round trip, and every malformed file rejected with a message that says why. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "testutil.h"

static char dir[64];

static void make_dir(void) {
    strcpy(dir, "/tmp/rlhf_st_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_raw(const char *path, const char *header, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    uint64_t len = strlen(header);
    fwrite(&len, 8, 1, f); /* little-endian host */
    fwrite(header, 1, len, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void expect_error(const char *header, size_t data_bytes, const char *needle) {
    char path[256];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    static const char zeros[256];
    write_raw(path, header, zeros, data_bytes);
    SafeTensors st;
    ck_assert_int_eq(safetensors_open(&st, path), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), needle) && strstr(err_msg(), path), "message '%s' lacks '%s'", err_msg(), needle);
}

START_TEST(test_round_trip_bit_exact) {
    make_dir();
    char path[256];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float w[6] = {1.5f, -0.0f, 3.25e-30f, 7, 1e30f, -2};
    uint32_t nanbits = 0x7fc00123u; /* a NaN with a payload survives byte for byte */
    memcpy(&w[1], &nanbits, 4);
    int32_t ids[3] = {-1, 0, 2147483647};
    StEntry e[2] = {{"w", ST_F32, 2, {2, 3}, w}, {"ids", ST_I32, 1, {3}, ids}};
    const char *meta[] = {"format", "pt", "config", "{\"dim\": 2}"};
    ck_assert_int_eq(safetensors_write(path, e, 2, meta, 2), ERR_OK);
    ck_assert_int_ne(access(path, F_OK), -1);
    SafeTensors st;
    ck_assert_int_eq(safetensors_open(&st, path), ERR_OK);
    ck_assert_int_eq(st.n_tensors, 2);
    ck_assert_str_eq(safetensors_meta(&st, "config"), "{\"dim\": 2}");
    ck_assert_ptr_null(safetensors_meta(&st, "nope"));
    float w2[6];
    int32_t ids2[3];
    int64_t s23[2] = {2, 3}, s3[1] = {3};
    ck_assert_int_eq(safetensors_read(&st, "w", ST_F32, 2, s23, w2), ERR_OK);
    ck_assert_int_eq(memcmp(w, w2, sizeof w), 0);
    ck_assert_int_eq(safetensors_read(&st, "ids", ST_I32, 1, s3, ids2), ERR_OK);
    ck_assert_int_eq(memcmp(ids, ids2, sizeof ids), 0);
    ck_assert_uint_eq((uintptr_t)safetensors_data(&st, safetensors_find(&st, "w")) % 8, 0);
    /* reading with the wrong expectations */
    int64_t s32[2] = {3, 2};
    ck_assert_int_eq(safetensors_read(&st, "w", ST_F32, 2, s32, w2), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "shape [2, 3], expected [3, 2]"));
    ck_assert_int_eq(safetensors_read(&st, "ids", ST_F32, 1, s3, w2), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "is I32, expected F32"));
    ck_assert_int_eq(safetensors_read(&st, "lm_head.weight", ST_F32, 1, s3, w2), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "'lm_head.weight' is missing"));
    safetensors_close(&st);
    /* no temporary file is left behind */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
    ck_assert_int_ne(system(cmd), 0);
    remove_dir();
}
END_TEST

START_TEST(test_malformed_files) {
    make_dir();
    expect_error("{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "F16 is not supported");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "truncated");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "8 bytes of data for shape of 3");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,0]}}", 8, "bad data_offsets");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative");
    expect_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                 12, "overlap");
    expect_error("{\"__metadata__\":{\"x\":1}}", 0, "not a string");
    expect_error("[1,2]", 0, "not a JSON object");
    expect_error("{\"w\": tru", 0, "not a JSON object");
    /* header length beyond the file, and a file shorter than 8 bytes */
    char path[256];
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    FILE *f = fopen(path, "wb");
    uint64_t len = 1000;
    fwrite(&len, 8, 1, f);
    fputs("{}", f);
    fclose(f);
    SafeTensors st;
    ck_assert_int_eq(safetensors_open(&st, path), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "runs past the end"));
    f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    ck_assert_int_eq(safetensors_open(&st, path), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "shorter than"));
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    ck_assert_int_eq(safetensors_open(&st, path), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "No such file"));
    remove_dir();
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_round_trip_bit_exact);
    tcase_add_test(tc, test_malformed_files);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
