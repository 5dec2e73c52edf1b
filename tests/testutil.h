/* Shared by the Check suites: run one suite and turn its result into an exit status. */
#ifndef RLHF_TESTUTIL_H
#define RLHF_TESTUTIL_H

#include <check.h>
#include <stdlib.h>

static inline int testutil_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Directory of the shared data files (../shared/data unless DATA is set). */
static inline const char *testutil_data_dir(void) {
    const char *d = getenv("DATA");
    return d && *d ? d : "../shared/data";
}

#endif
