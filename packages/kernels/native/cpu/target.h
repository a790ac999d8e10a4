// The function-level ISA target of the AVX-512 loops that live in baseline translation units (the
// read probe, the FMA peak). Clang 18 and later (the musl prebuild's zig toolchain) want evex512
// beside avx512f for 512-bit vectors; GCC does not know the name.
#pragma once

#if defined(__clang__) && __clang_major__ >= 18
#define IE_TARGET_AVX512 __attribute__((target("avx512f,evex512")))
#else
#define IE_TARGET_AVX512 __attribute__((target("avx512f")))
#endif
