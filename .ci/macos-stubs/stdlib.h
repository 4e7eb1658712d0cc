/* Stand-in for the C library header, only for type-checking keyhelper for
   aarch64-apple-darwin in CI (nothing built with it is run or shipped). */
#pragma once
#include <stddef.h>
void abort(void);
void *malloc(size_t size);
void free(void *ptr);
