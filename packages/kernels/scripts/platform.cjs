// The key a prebuilt addon is filed under: platform-arch, plus the C library on Linux (a binary
// linked against glibc does not load on musl, and the other way round).
'use strict';

function libc() {
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : undefined;
  return report?.header?.glibcVersionRuntime ? 'gnu' : 'musl';
}

function platformKey() {
  return process.platform === 'linux' ? `linux-${process.arch}-${libc()}` : `${process.platform}-${process.arch}`;
}

// The platforms the C++ sources build on: x86-64 only for now (the kernels are SSE/AVX2/AVX-512).
function supportedArch() {
  return process.arch === 'x64';
}

module.exports = { platformKey, supportedArch };
