/* A stand-in for Windows' bcryptprimitives.dll, for running keyhelper's
   Windows executables under Wine 8 in CI only (never shipped): Rust's std
   calls ProcessPrng at start-up, which Wine 8 lacks. It forwards to
   RtlGenRandom (SystemFunction036 in advapi32), which Wine has.
   `cargo xtask test` builds it with mingw and puts it beside the executables. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
