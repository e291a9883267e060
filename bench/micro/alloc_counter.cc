#include "bench/micro/alloc_counter.h"

#include <cstdlib>
#include <new>

namespace percore::micro {
namespace {

// Constant-initialized, so touching it never allocates, even while a thread
// is being set up.
constinit thread_local uint64_t t_allocations = 0;

void* allocate(std::size_t bytes) noexcept {
  ++t_allocations;
  return std::malloc(bytes == 0 ? 1 : bytes);
}

void* allocate_aligned(std::size_t bytes, std::align_val_t alignment) noexcept {
  ++t_allocations;
  auto align = static_cast<std::size_t>(alignment);
  if (align < sizeof(void*))
    align = sizeof(void*);
  // aligned_alloc wants a size that is a multiple of the alignment.
  const std::size_t rounded = ((bytes == 0 ? 1 : bytes) + align - 1) / align * align;
  return std::aligned_alloc(align, rounded);
}

void* allocate_or_throw(std::size_t bytes) {
  void* memory = allocate(bytes);
  if (memory == nullptr)
    throw std::bad_alloc();
  return memory;
}

void* allocate_aligned_or_throw(std::size_t bytes, std::align_val_t alignment) {
  void* memory = allocate_aligned(bytes, alignment);
  if (memory == nullptr)
    throw std::bad_alloc();
  return memory;
}

}  // namespace

uint64_t thread_allocations() {
  return t_allocations;
}

void count_allocation() {
  ++t_allocations;
}

}  // namespace percore::micro

// The replaceable global allocation functions. Every form is replaced, so that
// no allocation slips past the count and every deallocation matches its
// allocation (all of them end in free()).

void* operator new(std::size_t bytes) {
  return percore::micro::allocate_or_throw(bytes);
}
void* operator new[](std::size_t bytes) {
  return percore::micro::allocate_or_throw(bytes);
}
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
  return percore::micro::allocate(bytes);
}
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept {
  return percore::micro::allocate(bytes);
}
void* operator new(std::size_t bytes, std::align_val_t alignment) {
  return percore::micro::allocate_aligned_or_throw(bytes, alignment);
}
void* operator new[](std::size_t bytes, std::align_val_t alignment) {
  return percore::micro::allocate_aligned_or_throw(bytes, alignment);
}
void* operator new(std::size_t bytes, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return percore::micro::allocate_aligned(bytes, alignment);
}
void* operator new[](std::size_t bytes, std::align_val_t alignment,
                     const std::nothrow_t&) noexcept {
  return percore::micro::allocate_aligned(bytes, alignment);
}

void operator delete(void* memory) noexcept {
  std::free(memory);
}
void operator delete[](void* memory) noexcept {
  std::free(memory);
}
void operator delete(void* memory, const std::nothrow_t&) noexcept {
  std::free(memory);
}
void operator delete[](void* memory, const std::nothrow_t&) noexcept {
  std::free(memory);
}
void operator delete(void* memory, std::size_t) noexcept {
  std::free(memory);
}
void operator delete[](void* memory, std::size_t) noexcept {
  std::free(memory);
}
void operator delete(void* memory, std::align_val_t) noexcept {
  std::free(memory);
}
void operator delete[](void* memory, std::align_val_t) noexcept {
  std::free(memory);
}
void operator delete(void* memory, std::size_t, std::align_val_t) noexcept {
  std::free(memory);
}
void operator delete[](void* memory, std::size_t, std::align_val_t) noexcept {
  std::free(memory);
}
void operator delete(void* memory, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(memory);
}
void operator delete[](void* memory, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(memory);
}
