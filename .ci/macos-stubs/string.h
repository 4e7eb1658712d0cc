/* Stand-in for the C library header, only for type-checking keyhelper for
   aarch64-apple-darwin in CI (nothing built with it is run or shipped). */
#pragma once
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
