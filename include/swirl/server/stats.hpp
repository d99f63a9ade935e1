#pragma once
/// Server statistics (Swoole's `stats()`): what `Server::stats()` returns, the counters behind it, and a rendering
/// in the Prometheus text exposition format for a `/metrics` endpoint.
///
/// Counting costs relaxed atomic increments on counters of the connection's own event loop: no lock, no allocation.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace swirl {

/// One event loop's figures (or their sum: `Stats::total`). Counters count since the server was made; the
/// connection, topic and subscription figures are what exists at the time of the call.
struct LoopStats {
    std::size_t connecting = 0;  ///< reading the HTTP request (ConnectionStatus::connection)
    std::size_t handshaking = 0; ///< running the handshake hook
    std::size_t open = 0;        ///< WebSocket open (ACTIVE)
    std::size_t closing = 0;     ///< close handshake under way

    std::uint64_t accepted = 0;          ///< TCP connections accepted and served (not those answered 503)
    std::uint64_t refused_at_limit = 0;  ///< answered 503 at `max_connections` (counted on the first event loop)
    std::uint64_t upgraded = 0;          ///< handshakes accepted (on_open ran)
    std::uint64_t closed_by_server = 0;  ///< WebSocket connections the server ended (close frame, timeout, error)
    std::uint64_t closed_by_peer = 0;    ///< WebSocket connections the peer ended (close frame, FIN, reset)
    std::map<int, std::uint64_t> handshakes_rejected;            ///< by HTTP status
    std::map<std::uint16_t, std::uint64_t> protocol_errors;      ///< by the close code sent

    std::uint64_t messages_in = 0;   ///< data messages received (whole, after reassembly)
    std::uint64_t messages_out = 0;  ///< data frames queued to a connection (a publish counts once per recipient)
    std::uint64_t bytes_in = 0;      ///< bytes read from sockets (TLS: decrypted)
    std::uint64_t bytes_out = 0;     ///< bytes written to sockets (TLS: before encryption)
    std::uint64_t pushes_refused = 0;  ///< frames refused for backpressure (`PushStatus::buffer_full`)
    std::uint64_t hibernations = 0;    ///< session coroutines ended for a silent connection (see `Settings::ping_interval`)

    std::size_t topics = 0;         ///< topics with at least one subscriber on this loop
    std::size_t subscriptions = 0;  ///< (connection, topic) pairs on this loop

    std::size_t connections() const noexcept { return connecting + handshaking + open + closing; }
    LoopStats& operator+=(const LoopStats& o);
};

/// Offload pool figures (`Server::offload`).
struct TaskStats {
    std::size_t queued = 0;      ///< waiting for a worker
    std::size_t running = 0;
    std::uint64_t completed = 0; ///< returned a value
    std::uint64_t failed = 0;    ///< threw (the exception reached the awaiting handler)
    std::uint64_t refused = 0;   ///< queue full
    std::uint64_t cancelled = 0; ///< still queued when the server stopped
};

struct Stats {
    LoopStats total;
    std::vector<LoopStats> loops;  ///< one per event loop, in order
    TaskStats tasks;
    std::size_t topics = 0;  ///< distinct topics over all event loops (`total.topics` counts one per loop holding it)
};

inline LoopStats& LoopStats::operator+=(const LoopStats& o) {
    connecting += o.connecting;
    handshaking += o.handshaking;
    open += o.open;
    closing += o.closing;
    accepted += o.accepted;
    refused_at_limit += o.refused_at_limit;
    upgraded += o.upgraded;
    closed_by_server += o.closed_by_server;
    closed_by_peer += o.closed_by_peer;
    for (const auto& [status, n] : o.handshakes_rejected) handshakes_rejected[status] += n;
    for (const auto& [code, n] : o.protocol_errors) protocol_errors[code] += n;
    messages_in += o.messages_in;
    messages_out += o.messages_out;
    bytes_in += o.bytes_in;
    bytes_out += o.bytes_out;
    pushes_refused += o.pushes_refused;
    hibernations += o.hibernations;
    topics += o.topics;
    subscriptions += o.subscriptions;
    return *this;
}

namespace detail {

/// A counter written by many threads, read rarely.
struct Counter {
    std::atomic<std::uint64_t> value{0};
    void add(std::uint64_t n = 1) noexcept { value.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

/// A counter written by one thread only (its event loop's), read by any: a plain load and store where `Counter`
/// takes a locked read-modify-write (three of which an echoed message no longer makes).
struct LocalCounter {
    std::atomic<std::uint64_t> value{0};
    void add(std::uint64_t n = 1) noexcept { value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

/// One event loop's counters, bumped where things happen (session, connection, accept loop).
struct LoopCounters {
    Counter messages_out, pushes_refused;  // also bumped by other threads (a push, a publish)
    // The rest, the loop's thread only: its sessions, and (the first loop's) accepting.
    LocalCounter accepted, refused_at_limit, upgraded, closed_by_server, closed_by_peer;
    LocalCounter messages_in, bytes_in, bytes_out;
    LocalCounter messages_out_here;                    // the part of messages_out sent on the loop's thread
    LocalCounter hibernations;
    std::array<LocalCounter, 500> rejected_by_status;  ///< index: HTTP status - 100
    std::array<LocalCounter, 16> errors_by_code;       ///< index: close code - 1000 (1000..1015)
    LocalCounter errors_other_code;                    ///< an application close code (3000-4999) used for a protocol error

    void reject(int status) noexcept {
        if (status >= 100 && status < 600) rejected_by_status[static_cast<std::size_t>(status - 100)].add();
    }
    void protocol_error(std::uint16_t code) noexcept {
        if (code >= 1000 && code < 1016) errors_by_code[code - 1000u].add();
        else errors_other_code.add();
    }

    /// The counters into `s` (the gauges are the caller's).
    void read_into(LoopStats& s) const {
        s.accepted = accepted.get();
        s.refused_at_limit = refused_at_limit.get();
        s.upgraded = upgraded.get();
        s.closed_by_server = closed_by_server.get();
        s.closed_by_peer = closed_by_peer.get();
        s.messages_in = messages_in.get();
        s.messages_out = messages_out.get() + messages_out_here.get();
        s.bytes_in = bytes_in.get();
        s.bytes_out = bytes_out.get();
        s.pushes_refused = pushes_refused.get();
        s.hibernations = hibernations.get();
        for (std::size_t i = 0; i < rejected_by_status.size(); ++i)
            if (const auto n = rejected_by_status[i].get()) s.handshakes_rejected[static_cast<int>(i + 100)] = n;
        for (std::size_t i = 0; i < errors_by_code.size(); ++i)
            if (const auto n = errors_by_code[i].get()) s.protocol_errors[static_cast<std::uint16_t>(i + 1000)] = n;
        if (const auto n = errors_other_code.get()) s.protocol_errors[0] = n;
    }
};

inline void append_metric(std::string& out, std::string_view prefix, std::string_view name, std::string_view type,
                          std::string_view help) {
    out.append("# HELP ").append(prefix).append("_").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(prefix).append("_").append(name).append(" ").append(type).append("\n");
}

inline void append_sample(std::string& out, std::string_view prefix, std::string_view name, std::string_view labels,
                          std::uint64_t value) {
    out.append(prefix).append("_").append(name);
    if (!labels.empty()) out.append("{").append(labels).append("}");
    out.append(" ").append(std::to_string(value)).append("\n");
}

} // namespace detail

/// `stats` in the Prometheus text exposition format (version 0.0.4), every metric named `<prefix>_…` with a `loop`
/// label per event loop; serve it with `Content-Type: text/plain; version=0.0.4`.
inline std::string to_prometheus(const Stats& stats, std::string_view prefix = "swirl") {
    std::string out;
    const auto per_loop = [&](std::string_view name, std::string_view type, std::string_view help, auto field) {
        detail::append_metric(out, prefix, name, type, help);
        for (std::size_t i = 0; i < stats.loops.size(); ++i)
            detail::append_sample(out, prefix, name, "loop=\"" + std::to_string(i) + "\"", field(stats.loops[i]));
    };
    detail::append_metric(out, prefix, "connections", "gauge", "Connections by status.");
    for (std::size_t i = 0; i < stats.loops.size(); ++i) {
        const LoopStats& l = stats.loops[i];
        const std::string loop = "loop=\"" + std::to_string(i) + "\",status=\"";
        detail::append_sample(out, prefix, "connections", loop + "connecting\"", l.connecting);
        detail::append_sample(out, prefix, "connections", loop + "handshake\"", l.handshaking);
        detail::append_sample(out, prefix, "connections", loop + "open\"", l.open);
        detail::append_sample(out, prefix, "connections", loop + "closing\"", l.closing);
    }
    per_loop("accepted_total", "counter", "TCP connections accepted.", [](const LoopStats& l) { return l.accepted; });
    per_loop("refused_at_limit_total", "counter", "Connections answered 503 at max_connections.",
             [](const LoopStats& l) { return l.refused_at_limit; });
    per_loop("upgraded_total", "counter", "WebSocket handshakes accepted.", [](const LoopStats& l) { return l.upgraded; });
    detail::append_metric(out, prefix, "closed_total", "counter", "WebSocket connections ended, by who ended them.");
    for (std::size_t i = 0; i < stats.loops.size(); ++i) {
        const std::string loop = "loop=\"" + std::to_string(i) + "\",by=\"";
        detail::append_sample(out, prefix, "closed_total", loop + "server\"", stats.loops[i].closed_by_server);
        detail::append_sample(out, prefix, "closed_total", loop + "peer\"", stats.loops[i].closed_by_peer);
    }
    detail::append_metric(out, prefix, "handshakes_rejected_total", "counter", "Upgrade requests refused, by HTTP status.");
    for (std::size_t i = 0; i < stats.loops.size(); ++i)
        for (const auto& [status, n] : stats.loops[i].handshakes_rejected)
            detail::append_sample(out, prefix, "handshakes_rejected_total",
                                  "loop=\"" + std::to_string(i) + "\",status=\"" + std::to_string(status) + "\"", n);
    detail::append_metric(out, prefix, "protocol_errors_total", "counter",
                          "Connections failed for a protocol violation, by the close code sent (0: an application code).");
    for (std::size_t i = 0; i < stats.loops.size(); ++i)
        for (const auto& [code, n] : stats.loops[i].protocol_errors)
            detail::append_sample(out, prefix, "protocol_errors_total",
                                  "loop=\"" + std::to_string(i) + "\",code=\"" + std::to_string(code) + "\"", n);
    per_loop("messages_in_total", "counter", "Data messages received.", [](const LoopStats& l) { return l.messages_in; });
    per_loop("messages_out_total", "counter", "Data frames queued to connections.",
             [](const LoopStats& l) { return l.messages_out; });
    per_loop("bytes_in_total", "counter", "Bytes read from connections.", [](const LoopStats& l) { return l.bytes_in; });
    per_loop("bytes_out_total", "counter", "Bytes written to connections.", [](const LoopStats& l) { return l.bytes_out; });
    per_loop("pushes_refused_total", "counter", "Frames refused because a connection's output buffer was full.",
             [](const LoopStats& l) { return l.pushes_refused; });
    per_loop("hibernations_total", "counter",
             "Session coroutines ended for a connection silent for a heartbeat interval (it parks until its next message).",
             [](const LoopStats& l) { return l.hibernations; });
    per_loop("topics", "gauge", "Topics with a subscriber on the loop.", [](const LoopStats& l) { return l.topics; });
    per_loop("subscriptions", "gauge", "Subscriptions (connection, topic) on the loop.",
             [](const LoopStats& l) { return l.subscriptions; });
    const auto task_metric = [&](std::string_view name, std::string_view type, std::string_view help, std::uint64_t v) {
        detail::append_metric(out, prefix, name, type, help);
        detail::append_sample(out, prefix, name, {}, v);
    };
    task_metric("tasks_queued", "gauge", "Offloaded tasks waiting for a worker.", stats.tasks.queued);
    task_metric("tasks_running", "gauge", "Offloaded tasks running.", stats.tasks.running);
    detail::append_metric(out, prefix, "tasks_total", "counter", "Offloaded tasks finished, by outcome.");
    detail::append_sample(out, prefix, "tasks_total", "outcome=\"completed\"", stats.tasks.completed);
    detail::append_sample(out, prefix, "tasks_total", "outcome=\"failed\"", stats.tasks.failed);
    detail::append_sample(out, prefix, "tasks_total", "outcome=\"refused\"", stats.tasks.refused);
    detail::append_sample(out, prefix, "tasks_total", "outcome=\"cancelled\"", stats.tasks.cancelled);
    return out;
}

} // namespace swirl
