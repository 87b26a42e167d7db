/*===- plain_library.c - A shared object that is not a Loom artifact ------===*
 *
 * This file builds an ordinary shared library without a manifest section, so
 * the tests can check that the runtime refuses ELF files that are not
 * artifacts.
 *
 *===----------------------------------------------------------------------===*/

__attribute__((visibility("default"))) int loom_test_plain(void) { return 1; }
