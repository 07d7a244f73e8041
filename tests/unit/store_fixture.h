/* The store tests' fixture: a fresh store (storage_open) in a temporary folder of its own, removed
 * with everything in it by the teardown. */
#ifndef AUGSERVE_TEST_STORE_FIXTURE_H
#define AUGSERVE_TEST_STORE_FIXTURE_H

struct storage;

struct fixture {
    char dir[64];
    struct storage *st;
};

/* cmocka setup and teardown: *state is the struct fixture. */
int store_setup(void **state);
int store_teardown(void **state);

#endif
