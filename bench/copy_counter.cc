// libpercore-copy-counter.so: counts the large memory copies a process makes,
// to show how many times a message body is copied in user space (the kernel's
// copies, in read and write, are not seen). Preloaded:
//
//   PERCORE_COPY_COUNT_FILE=out.txt LD_PRELOAD=.../libpercore-copy-counter.so prog ...
//
// Every memcpy and memmove of at least PERCORE_COPY_MIN_BYTES (default 4096)
// bytes that goes through the dynamic linker (libstdc++'s string copies,
// protobuf's, percore's own) is counted; at exit the counts are written to
// the file as "copies BYTES_TOTAL COUNT". A copy the compiler inlined is not
// seen, which only happens for sizes it knows to be small.

#include <dlfcn.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace {

using CopyFunction = void* (*)(void*, const void*, size_t);

std::atomic<unsigned long long> copied_bytes{0};
std::atomic<unsigned long long> copies{0};
size_t min_bytes = 4096;
CopyFunction real_memcpy = nullptr;
CopyFunction real_memmove = nullptr;

// Used only before the real functions are found (dlsym may copy): a plain
// loop the compiler must not turn back into a memcpy call.
void* slow_copy(void* destination, const void* source, size_t bytes) {
  volatile unsigned char* to = static_cast<unsigned char*>(destination);
  const unsigned char* from = static_cast<const unsigned char*>(source);
  if (to < from) {
    for (size_t i = 0; i < bytes; ++i)
      to[i] = from[i];
  } else {
    for (size_t i = bytes; i > 0; --i)
      to[i - 1] = from[i - 1];
  }
  return destination;
}

void count(size_t bytes) {
  if (bytes >= min_bytes) {
    copied_bytes.fetch_add(bytes, std::memory_order_relaxed);
    copies.fetch_add(1, std::memory_order_relaxed);
  }
}

void report() {
  const char* path = std::getenv("PERCORE_COPY_COUNT_FILE");
  if (path == nullptr)
    return;
  if (FILE* out = std::fopen(path, "w")) {
    std::fprintf(out, "copies %llu %llu\n", copied_bytes.load(), copies.load());
    std::fclose(out);
  }
}

__attribute__((constructor)) void start() {
  real_memcpy = reinterpret_cast<CopyFunction>(dlsym(RTLD_NEXT, "memcpy"));
  real_memmove = reinterpret_cast<CopyFunction>(dlsym(RTLD_NEXT, "memmove"));
  if (const char* min = std::getenv("PERCORE_COPY_MIN_BYTES"))
    min_bytes = std::strtoull(min, nullptr, 10);
  std::atexit(report);
}

}  // namespace

extern "C" {

void* memcpy(void* destination, const void* source, size_t bytes) {
  count(bytes);
  return real_memcpy != nullptr ? real_memcpy(destination, source, bytes)
                                : slow_copy(destination, source, bytes);
}

void* memmove(void* destination, const void* source, size_t bytes) {
  count(bytes);
  return real_memmove != nullptr ? real_memmove(destination, source, bytes)
                                 : slow_copy(destination, source, bytes);
}

// _FORTIFY_SOURCE's checked forms call glibc's memcpy from inside libc,
// where preloading does not reach: they are counted here.
void* __memcpy_chk(void* destination, const void* source, size_t bytes, size_t room) {
  if (bytes > room)
    std::abort();
  return memcpy(destination, source, bytes);
}

void* __memmove_chk(void* destination, const void* source, size_t bytes, size_t room) {
  if (bytes > room)
    std::abort();
  return memmove(destination, source, bytes);
}

}  // extern "C"
