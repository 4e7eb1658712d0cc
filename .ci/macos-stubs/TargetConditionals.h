/* Stand-in for the macOS SDK header, only for type-checking keyhelper for
   aarch64-apple-darwin in CI (nothing built with it is run or shipped). */
#pragma once
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
