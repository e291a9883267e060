#pragma once

// Boost 1.74's Asio uses std::exchange without including <utility>, which
// GCC 12 rejects in C++20 mode: include it first, always through this header.
#include <utility>

#include <boost/asio.hpp>
