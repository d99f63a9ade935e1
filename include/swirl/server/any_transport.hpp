#pragma once
/// Every transport a connection may run on: plain TCP, and TLS where swirl is built with it (`SWIRL_TLS`, set by
/// the Meson option `tls`; define it yourself and link OpenSSL 3 when you copy the headers).
/// A connection's session is compiled for its transport alone; only the write path, which any thread may start,
/// chooses among these (with one alternative, not at all).

#include <swirl/server/transport.hpp>
#if SWIRL_TLS
#include <swirl/server/tls_transport.hpp>
#endif

#include <utility>
#include <variant>

namespace swirl {

#if SWIRL_TLS
using AnyTransport = std::variant<TcpTransport, TlsTransport>;
#else
using AnyTransport = std::variant<TcpTransport>;
#endif

namespace detail {

/// Calls `f(transport)` with the transport `t` holds.
template <class F>
decltype(auto) visit_transport(AnyTransport& t, F&& f) {
    if constexpr (std::variant_size_v<AnyTransport> == 1) return std::forward<F>(f)(*std::get_if<0>(&t));
    else return std::visit(std::forward<F>(f), t);
}

} // namespace detail
} // namespace swirl
