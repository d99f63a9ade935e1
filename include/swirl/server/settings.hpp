#pragma once
/// Server configuration. Every limit has a safe default; zero timeouts mean "none".

#include <swirl/protocol/http_request.hpp>
#include <swirl/server/compression.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace swirl {

class TlsContext;  // server/tls_context.hpp: certificates and TLS policy (needs SWIRL_TLS and OpenSSL 3)

/// What `push` does when a connection's unsent output exceeds `Settings::max_output_buffer` (a slow reader).
enum class BackpressurePolicy {
    reject_message,    ///< the push fails with `PushStatus::buffer_full`; the connection stays open (Swoole's behaviour)
    close_connection,  ///< the push fails and the connection is closed with 1008 "output buffer full"
};

enum class LogLevel { debug, info, warning, error, off };

/// One address the server accepts connections on. `Settings` names the first; `Server::add_listener` adds more
/// (Swoole's `addListener`), all served by the same handlers, registry and limits.
struct ListenOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;   ///< 0 picks a free port; `add_listener` returns where the kernel put it
    int backlog = 1024;
    bool reuse_port = false;  ///< SO_REUSEPORT: other sockets may bind the same port, and the kernel spreads new
                              ///< connections over them (one server process per core, say)
    std::shared_ptr<TlsContext> tls{};  ///< set: wss, TLS through this context; null: plain ws
};

struct Settings {
    std::string host = "127.0.0.1";
    std::uint16_t port = 9501;  ///< 0 picks a free port; see `Server::local_endpoint()`
    unsigned threads = 1;       ///< event-loop threads; each connection stays on one of them
    /// Asio's per-socket locks in the event loops. Off by default: every socket of a loop is touched by that loop's
    /// thread only (swirl hands accepted sockets over before registering them, and posts everything else), which
    /// saves ~180 instructions per echoed message. The one thing this rules out: starting an operation on an I/O
    /// object of `Server::context()` (a socket or descriptor of your own) from a thread other than that loop's,
    /// while it runs. Do that from a coroutine or handler on the loop (`asio::post` or `co_spawn` to it), or turn
    /// this on.
    bool socket_locks = false;
    int backlog = 1024;
    bool reuse_port = false;    ///< SO_REUSEPORT on this listener (see `ListenOptions::reuse_port`)
    std::shared_ptr<TlsContext> tls{};  ///< wss on this listener (see `ListenOptions::tls`)

    std::size_t max_frame_size = 16u << 20;    ///< payload bytes in one frame; more → close 1009
    std::size_t max_message_size = 16u << 20;  ///< bytes in one reassembled message; more → close 1009
    RequestLimits http{};                       ///< upgrade/plain request limits (header bytes, fields, body)
    std::size_t max_connections = 10000;        ///< beyond this, new connections get HTTP 503

    std::chrono::milliseconds handshake_timeout{10000};  ///< from accept to a finished upgrade
    std::chrono::milliseconds idle_timeout{0};           ///< no bytes from the peer for this long → close 1001 (0: off)
    /// Heartbeat: a WebSocket peer silent this long gets a ping (0: never). Keeps the connection alive through load
    /// balancers that cut idle TCP (often at 60 s); any RFC 6455 client answers with a pong. A connection whose
    /// message handler is a coroutine also hibernates then: its session coroutine ends (about 1.4 KB of frames) and
    /// it waits as a connection with a plain handler does, until its next message starts one again (`Stats` counts
    /// `hibernations`). A plain TCP connection upgraded without a coroutine (no coroutine open handler) waits so for
    /// its first message too, whatever this is. With a `pong_timeout`, a pinged connection also gives back what it
    /// keeps for its next message once the ping is written (its output buffers, and over TLS OpenSSL's record
    /// buffers, about 17 KiB each way) and, over TLS, again once the answer is read. 0 turns off the rest.
    std::chrono::milliseconds ping_interval{30000};
    /// A pinged peer that sends nothing (neither the pong nor anything else) for this long is dropped: `on_close`
    /// sees 1006 and the TCP connection is closed. Frees the slots of peers that vanished without a FIN.
    /// 0: pings are sent but never awaited.
    std::chrono::milliseconds pong_timeout{30000};
    std::chrono::milliseconds close_timeout{5000};       ///< wait for the peer's close frame / FIN (0: no limit)

    std::size_t max_output_buffer = 8u << 20;  ///< unsent bytes per connection before `backpressure` applies
    BackpressurePolicy backpressure = BackpressurePolicy::reject_message;
    /// While more unsent bytes than this are queued, the connection reads nothing until they are all written: a peer
    /// that sends faster than it reads then waits in TCP, and replies are neither refused nor piled up in memory.
    /// 0 (the default, as Swoole): reading never pauses and `backpressure` decides at `max_output_buffer`.
    std::size_t pause_reading_above = 0;
    /// Bytes one read takes from a socket, into its event loop's one shared read buffer. Large reads let a burst of
    /// large messages in with few system calls (echoing 16 KiB messages 16 at a time: ~1.7x the messages per
    /// CPU-second of 64 KiB reads); replies to one read's messages leave in one write. It is also the most unread input a
    /// connection keeps for itself when its handler pauses reading in the middle of a read. With
    /// `pause_reading_above` set, a read takes at most that much (so that the replies to one read stay near it);
    /// never less than 16 KiB.
    std::size_t read_size = 512u << 10;
    /// `on_drain` fires once a connection's unsent output has fallen to this many bytes or fewer after the socket
    /// pushed back (the peer reads slower than the server writes) or a push to it was refused (`buffer_full`).
    std::size_t drain_below = 64u << 10;

    /// Worker threads of the offload pool (`Server::offload`, Swoole's task workers); started on first use.
    unsigned task_threads = 4;
    /// Offloaded tasks that may wait for a worker; one more makes `offload` throw `OffloadError`.
    std::size_t task_queue_size = 1024;

    std::vector<std::string> subprotocols;  ///< supported, in order of preference
    /// permessage-deflate (RFC 7692): off by default (the extension is declined); memory modes, windows and the
    /// size threshold in swirl/server/compression.hpp.
    CompressOptions compression{};

    bool deliver_close = false;  ///< also hand close frames to the message handler (Swoole's open_websocket_close_frame)
    bool deliver_ping = false;   ///< also hand ping frames to the message handler
    bool deliver_pong = false;   ///< hand pong frames to the message handler instead of swallowing them
    bool auto_pong = true;       ///< answer every ping with a pong carrying its payload

    LogLevel log_level = LogLevel::info;

    /// From `listen()` on (and so `run()` and `start()`), SIGINT or SIGTERM stop the server gracefully (`stop()`), as
    /// Swoole does on SIGTERM; further such signals are ignored until the server is destroyed, so that the shutdown
    /// is not cut short. The server's handler replaces any other the program installed for these two signals (one
    /// through asio's `signal_set` still runs too), and the default action is back once the server is destroyed.
    /// False: the application handles signals itself (an `asio::signal_set` on `Server::context()`, say).
    bool stop_on_signals = true;
};

} // namespace swirl
