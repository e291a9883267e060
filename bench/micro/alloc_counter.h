#pragma once

#include <cstddef>
#include <cstdint>

// Counts heap allocations per thread, for the allocs/op figure of the
// micro-benchmarks. alloc_counter.cc replaces the global operator new in all
// its forms (plain, array, aligned, nothrow); each call adds one to a counter
// of the calling thread. Code that allocates with malloc directly (a
// container's allocator hook) adds itself with count_allocation().
namespace percore::micro {

// Allocations made by the calling thread since it started.
uint64_t thread_allocations();

// Adds one allocation to the calling thread's count.
void count_allocation();

}  // namespace percore::micro
