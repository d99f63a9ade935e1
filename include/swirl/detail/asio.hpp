#pragma once
/// Asio, with C++20 coroutines switched on where Asio 1.22 fails to detect them (clang: it looks for the
/// pre-standard __cpp_coroutines macro). Include swirl before Asio, or define these macros yourself.

#if defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#define ASIO_HAS_STD_COROUTINE 1
#endif

#include <asio.hpp>
