/* Stand-in for the C library header, only for type-checking keyhelper for
   aarch64-apple-darwin in CI (nothing built with it is run or shipped). */
#pragma once
#define assert(expression) ((void)0)
