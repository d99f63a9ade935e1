#pragma once
/// One connection from accept to close: the HTTP phase (plain requests, the upgrade and the handshake hook), the
/// WebSocket phase (the frame loop and the message handler), the close handshake, and the watchdog that enforces the
/// handshake, heartbeat, idle and close deadlines. Written as one coroutine (`run`); what needs no waiting also runs
/// in place, from readiness callbacks, without a coroutine frame: the upgrade (`start_in_place`), an open
/// connection's reads with a plain message handler (`pump`), and the answer to the peer's close frame.
///
/// The session is compiled for one transport (server/transport.hpp) and drives its connection through the
/// connection's session interface (server/connection.hpp); what it needs of the server is a `SessionHost`.

#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/handshake.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/http_response.hpp>
#include <swirl/protocol/message_reader.hpp>
#include <swirl/protocol/deflate.hpp>
#include <swirl/protocol/permessage_deflate.hpp>
#include <swirl/protocol/utf8.hpp>
#include <swirl/server/connection.hpp>
#include <swirl/server/detail/log.hpp>
#include <swirl/server/detail/loop_buffers.hpp>
#include <swirl/server/handlers.hpp>
#include <swirl/server/settings.hpp>
#include <swirl/server/transport.hpp>

#include <swirl/detail/asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace swirl::detail {

/// An open connection reads into its event loop's shared bulk buffer and keeps no read buffer while idle. It has a
/// small one of its own for the HTTP request, and for reads while another connection holds the bulk buffer.
inline constexpr std::size_t connection_read_size = 1024;
/// A connection that goes idle lends its message buffer to the loop's pool; one the pool has no room for is kept
/// up to the size its output queues keep, not a burst's.
inline constexpr std::size_t idle_message_capacity = OutputQueue::default_kept_capacity;

/// What a session needs of its server. Outlives every session.
template <class UserData>
struct SessionHost {
    const Settings& settings;
    const Handlers<UserData>& handlers;
    const std::atomic<bool>& stopping;
    std::function<void(Connection<UserData>&)> forget;  ///< takes the ended connection out of its topics and the registry
    std::atomic<std::uint64_t>& tls_handshake_failures;
};

template <class UserData>
class Session {
public:
    using Connection = swirl::Connection<UserData>;
    using clock = typename Connection::clock;

    /// Starts the session of a connection the server accepted, on the connection's event loop (the caller is on
    /// that loop's thread). A plain TCP connection whose upgrade request arrives whole and is answered without a
    /// coroutine hook upgrades in place, without a coroutine frame (`start_in_place`, once the request is there);
    /// any other runs `run`.
    template <Transport T>
    static void start(SessionHost<UserData>& host, std::shared_ptr<Connection> c) {
        prepare(host, *c);
        if constexpr (std::is_same_v<T, TcpTransport>) {
            if (!host.handlers.handshake) {
                // A client that has just connected has seldom sent its request yet: wait for it rather than find
                // the socket empty (the wait completes at once when the request is there).
                T& t = c->template transport<T>();
                return t.async_wait(asio::socket_base::wait_read, Arriving<T>{&host, std::move(c)});
            }
        }
        const auto executor = c->executor();
        asio::co_spawn(executor, run<T>(host, std::move(c)), asio::detached);
    }

private:
    /// A new connection's read buffer for its HTTP request, and its handshake deadline.
    static void prepare(SessionHost<UserData>& host, Connection& c) {
        c.own_read_buffer().resize(connection_read_size);
        if (host.settings.handshake_timeout.count() > 0) c.move_deadline(clock::now() + host.settings.handshake_timeout);
        c.watch();
    }

    /// The session as one coroutine, from `have` bytes of the HTTP phase already read into the connection's own
    /// buffer. Its frame holds the session for the connection's whole life; the phases are coroutines of their own,
    /// alive one at a time.
    template <Transport T>
    static asio::awaitable<void> run(SessionHost<UserData>& host, std::shared_ptr<Connection> c, std::size_t have = 0) {
        Session s(host, *c);
        T& t = c->template transport<T>();
        if constexpr (requires { t.handshake(); }) {  // TLS: bounded by handshake_timeout like the HTTP phase
            if (const std::error_code ec = co_await t.handshake()) {
                detail::log(host.settings.log_level, LogLevel::debug, "connection {}: TLS handshake failed: {}",
                            c->id(), ec.message());
                host.tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
                c->finish();
                host.forget(*c);
                co_return;
            }
            c->set_tls({std::string(t.sni()), t.peer_subject(), std::string(t.alpn()), std::string(t.version())});
        }

        // What stays in this frame for the connection's life is kept small (the upgrade request is on the heap
        // until `open` has seen it; the close tail is a coroutine of its own): an idle connection with a coroutine
        // message handler holds this frame (one with a plain handler parks, and holds none).
        std::size_t leftover = have;
        std::unique_ptr<Request> upgrade = co_await s.http_phase(t, leftover);
        if (upgrade && co_await s.websocket_phase(t, std::move(upgrade), leftover)) {
            park<T>(host, std::move(c));  // this coroutine ends: an idle connection keeps none (see `park`)
            co_return;
        }
        co_await s.finish_phase();
    }

    Session(SessionHost<UserData>& host, Connection& c) : host_(host), settings_(host.settings), c_(c) {}

    template <class... Args>
    void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) const {
        detail::log(settings_.log_level, level, format, std::forward<Args>(args)...);
    }

    const Handlers<UserData>& handlers() const noexcept { return host_.handlers; }

    /// The session is over: runs the close handler for a connection that opened, then forgets the connection.
    asio::awaitable<void> finish_phase() {
        if (!handlers().close) {
            finish_now();
            co_return;
        }
        const bool was_open = c_.opened();
        const CloseInfo info = end_session();
        if (was_open) co_await call_handler("close", [&] { return handlers().close(c_, info); });
        host_.forget(c_);
    }

    /// `finish_phase` without a coroutine, for a session with no coroutine close handler.
    void finish_now() {
        const bool was_open = c_.opened();
        const CloseInfo info = end_session();
        if (was_open && handlers().plain_close) call_plain("close", [&] { handlers().plain_close(c_, info); });
        host_.forget(c_);
    }

    /// Stops the watchdog and closes the transport; counts how an open connection ended. Returns why it ended.
    CloseInfo end_session() {
        const bool was_open = c_.opened();
        CloseInfo info = c_.finish();
        if (was_open) (info.by_server ? c_.counters().closed_by_server : c_.counters().closed_by_peer).add();
        return info;
    }

    /// Reads HTTP requests until an upgrade (returned) or the end of the connection (null). `leftover`: on entry,
    /// bytes already read into the connection's own buffer; on return, those that follow the upgrade request.
    template <Transport T>
    asio::awaitable<std::unique_ptr<Request>> http_phase(T& t, std::size_t& leftover) {
        RequestParser parser(settings_.http);
        std::vector<std::uint8_t>& buffer = c_.own_read_buffer();
        std::size_t have = std::exchange(leftover, 0);  // unparsed bytes at the front of the read buffer
        while (true) {
            while (parser.status() == RequestParser::Status::incomplete) {
                if (have == 0) {
                    std::error_code ec;
                    have = t.read_some(asio::buffer(buffer), ec);  // the request is usually there: no wait, no frame
                    if (would_block(ec)) have = co_await read_some_waiting(t, asio::buffer(buffer), ec, true);
                    if (ec) co_return nullptr;
                    c_.note_activity(have);
                }
                const auto r = parser.feed(std::string_view(reinterpret_cast<const char*>(buffer.data()), have));
                consume_front(buffer, have, r.consumed);
            }
            if (parser.status() == RequestParser::Status::error) {
                log(LogLevel::debug, "connection {}: bad request: {}", c_.id(), parser.error_reason());
                Response res(parser.error_status(), std::string(parser.error_reason()) + "\n");
                res.set_header("Connection", "close");
                co_await write_response(t, res, false);
                co_return nullptr;
            }
            Request& req = parser.request();
            if (is_upgrade_request(req)) {
                if (co_await handshake(t, req)) {
                    leftover = have;
                    co_return std::make_unique<Request>(std::move(req));
                }
                co_return nullptr;
            }
            Response res;
            const bool keep_alive = req.keep_alive() && handlers().request && !host_.stopping;
            if (handlers().request) {
                const bool ok = co_await call_handler("request", [&] { return handlers().request(c_, req, res); });
                if (!ok) res = Response(500, "internal error\n");
            } else {
                res = Response(400, "this endpoint speaks WebSocket only\n");
            }
            if (!keep_alive) res.set_header("Connection", "close");
            if (!co_await write_response(t, res, keep_alive) || !keep_alive) co_return nullptr;
            parser.reset();
            if (settings_.handshake_timeout.count() > 0) c_.move_deadline(clock::now() + settings_.handshake_timeout);
        }
    }

    /// Runs the handshake hook (or the RFC default) and writes its response; true when upgraded.
    template <Transport T>
    asio::awaitable<bool> handshake(T& t, const Request& req) {
        Response res;
        bool accepted = false;
        if (handlers().handshake) {
            begin_handshake(req, res);
            bool answer = false;
            const bool ok = co_await call_handler("handshake", [&]() -> asio::awaitable<void> {
                answer = co_await handlers().handshake(c_, req, res);
            });
            accepted = settle_handshake(req, res, ok ? hook_verdict(answer, req, res) : Verdict::failed);
        } else {
            accepted = answer_handshake(req, res);
        }
        const bool written = co_await write_response(t, res, accepted);
        co_return accepted && written;
    }

    /// How a handshake ended: accepted, refused (by the hook or the RFC), or failed (a hook that threw or answered
    /// what cannot be sent: 500).
    enum class Verdict { accepted, refused, failed };

    /// The handshake without a coroutine hook: the plain hook's answer, or the RFC default. True: accepted (`res` is
    /// the 101 to send); false: `res` is the refusal to send before closing.
    bool answer_handshake(const Request& req, Response& res) {
        begin_handshake(req, res);
        if (!handlers().plain_handshake)
            return settle_handshake(req, res, accept_handshake(req, res, settings_.subprotocols) ? Verdict::accepted : Verdict::refused);
        Verdict verdict = Verdict::failed;
        try {
            const bool answer = handlers().plain_handshake(c_, req, res);
            verdict = hook_verdict(answer, req, res);
        } catch (...) {
            handler_threw("handshake");
        }
        return settle_handshake(req, res, verdict);
    }

    /// The RFC default's acceptance when it is the whole answer (no hook; no extension offered that would be
    /// answered; no subprotocol to select), built without a `Response`; nullopt: `answer_handshake` answers.
    std::optional<SwitchingProtocols> default_acceptance(const Request& req) {
        if (handlers().handshake || handlers().plain_handshake) return std::nullopt;
        if (settings_.compression.negotiation().enabled && req.header("Sec-WebSocket-Extensions")) return std::nullopt;
        if (!settings_.subprotocols.empty() && req.header("Sec-WebSocket-Protocol")) return std::nullopt;
        if (validate_upgrade(req) != HandshakeError::none) return std::nullopt;
        c_.set_status(ConnectionStatus::handshake);
        return SwitchingProtocols(*req.header("Sec-WebSocket-Key"));
    }

    /// Before the hook runs: permessage-deflate's answer under Settings::compression is in `res`, which the hook may
    /// keep, change or remove (see agree_extensions).
    void begin_handshake(const Request& req, Response& res) {
        c_.set_status(ConnectionStatus::handshake);
        accept_deflate(req, res, settings_.compression.negotiation());
    }

    /// A hook's answer, checked: an acceptance without a 101, or with a subprotocol the client cannot take, fails.
    Verdict hook_verdict(bool accepted, const Request& req, Response& res) {
        if (!accepted) return Verdict::refused;
        if (res.status != 101) {
            log(LogLevel::error, "connection {}: handshake hook accepted without a 101 response; "
                                 "call swirl::accept_handshake(req, res)", c_.id());
            return Verdict::failed;
        }
        return agree_subprotocol(req, res) ? Verdict::accepted : Verdict::failed;
    }

    /// The handshake's outcome in `res`: an acceptance whose extensions agree (its subprotocol taken up), or a
    /// refusal that closes (500 for a failure; a refusal keeps its own status, or gets 400 for a 101 or 1xx).
    /// True: accepted.
    bool settle_handshake(const Request& req, Response& res, Verdict verdict) {
        if (verdict == Verdict::accepted && !agree_extensions(req, res)) verdict = Verdict::failed;
        if (verdict == Verdict::accepted) {
            if (const auto protocol = res.header("Sec-WebSocket-Protocol")) c_.set_subprotocol(*protocol);
            return true;
        }
        if (verdict == Verdict::failed) res = Response(500, "internal error\n");
        res.remove_header("Sec-WebSocket-Extensions");
        if (res.status == 101 || res.status < 200) res = Response(400);
        c_.counters().reject(res.status);
        res.set_header("Connection", "close");
        log(LogLevel::debug, "connection {}: handshake rejected with {}", c_.id(), res.status);
        return false;
    }

    /// After a hook accepted: a hook that chose no subprotocol (`accept_handshake(req, res)`) gets the one
    /// `Settings::subprotocols` selects, as the default handshake would; an empty `Sec-WebSocket-Protocol` is the
    /// hook declining every subprotocol (the field is not sent); one the client did not offer, or more than one
    /// field, is refused (RFC 6455 §4.1: the client would fail the connection). False: refused.
    bool agree_subprotocol(const Request& req, Response& res) {
        const auto fields = std::count_if(res.headers.begin(), res.headers.end(),
                                          [](const Header& h) { return detail::iequals(h.name, "Sec-WebSocket-Protocol"); });
        if (fields > 1) {
            log(LogLevel::error, "connection {}: handshake hook set Sec-WebSocket-Protocol more than once", c_.id());
            return false;
        }
        if (const auto chosen = res.header("Sec-WebSocket-Protocol")) {
            if (chosen->empty()) {
                res.remove_header("Sec-WebSocket-Protocol");
                return true;
            }
            const std::string name(*chosen);
            if (select_subprotocol(req, std::span<const std::string>(&name, 1))) return true;
            log(LogLevel::error, "connection {}: handshake hook chose subprotocol \"{}\", which the client did not offer",
                c_.id(), name);
            return false;
        }
        if (const auto protocol = select_subprotocol(req, settings_.subprotocols)) res.set_header("Sec-WebSocket-Protocol", *protocol);
        return true;
    }

    /// After the upgrade was accepted: takes up the extension the response agrees to (the server's proposal, or
    /// what the hook made of it). An answer that is not a valid acceptance of one of the client's offers (RFC 7692
    /// §7.1), or any extension in a build without zlib, is refused (false): the client would fail the connection.
    bool agree_extensions(const Request& req, const Response& res) {
        const auto value = res.header("Sec-WebSocket-Extensions");
        if (!value) return true;
        const auto params = parse_deflate_response(*value);
        if (!deflate_available || !params || !is_valid_deflate_response(req, *params)) {
            log(LogLevel::error, "connection {}: Sec-WebSocket-Extensions \"{}\" is not a valid answer to the client's offers{}",
                c_.id(), *value, deflate_available ? "" : " (this build has no zlib)");
            return false;
        }
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        c_.enable_deflate(*params, settings_.compression);
#endif
        return true;
    }

    /// A compressed message (RSV1) in `frame`, complete: inflated in place within `max_message_size`, text checked
    /// as UTF-8. Returns the close code to fail the connection with (0: none) and why.
    std::pair<std::uint16_t, std::string_view> inflate_message([[maybe_unused]] Frame& frame) {
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        detail::ConnectionDeflate& deflate = *c_.deflate_state();  // the reader allows RSV1 only with the extension
        detail::SharedCodecs& codecs = detail::SharedCodecs::this_thread();
        std::string& inflated = codecs.inflated();
        const InflateResult r = deflate.inflate(frame.payload, inflated, settings_.max_message_size);
        if (r != InflateResult::ok) return {close_code_for(r), deflate.error_reason()};
        if (frame.opcode == Opcode::text && !is_valid_utf8(inflated)) return {close_code::invalid_payload, "invalid UTF-8 in text message"};
        frame.payload.swap(inflated);  // the received bytes' buffer receives the next message inflated
        frame.rsv = 0;
        codecs.trim(1u << 20);
        return {0, {}};
#else
        return {close_code::protocol_error, "compressed message without zlib"};
#endif
    }

    /// Writes a whole HTTP response; without `keep_open`, then half-closes and lingers so it is not lost to a reset.
    /// A malformed response from a hook is replaced by a 500 that closes the connection (false).
    template <Transport T>
    asio::awaitable<bool> write_response(T& t, const Response& res, bool keep_open) {
        std::string bytes, malformed;
        try {
            bytes = res.serialize();  // checks the response (`malformed()`) once: throws when it cannot be sent
        } catch (const std::invalid_argument& e) {
            malformed = e.what();
        }
        if (!malformed.empty()) {
            log(LogLevel::error, "connection {}: a hook's response was not sent: {}", c_.id(), malformed);
            Response internal_error(500, "internal error\n");
            internal_error.set_header("Connection", "close");
            co_await write_response(t, internal_error, false);
            co_return false;
        }
        std::error_code ec;
        const asio::const_buffer all = asio::buffer(bytes);
        std::size_t written = t.write_some(std::span<const asio::const_buffer>(&all, 1), ec);  // usually all of it
        if (!ec && written < bytes.size()) written += co_await write_all(t, all + written, ec, true);
        c_.count_out(written);
        if (ec) co_return false;
        if (!keep_open) co_await linger(t);
        co_return true;
    }

    /// Half-closes and discards input until the peer closes too (bounded by `close_timeout`).
    template <Transport T>
    asio::awaitable<void> linger(T& t) {
        std::error_code ec;
        t.shutdown_send(ec);
        c_.arm_close_timeout();
        c_.set_status(ConnectionStatus::closing);
        std::vector<std::uint8_t>& buffer = c_.own_read_buffer();
        if (buffer.empty()) buffer.resize(connection_read_size);
        while (!ec) c_.count_in(co_await read_some_waiting(t, asio::buffer(buffer), ec));
    }

    /// Marks an event loop's bulk buffer busy while a connection still reads from it.
    class BulkLease {
    public:
        BulkLease() = default;
        BulkLease(const BulkLease&) = delete;
        BulkLease& operator=(const BulkLease&) = delete;
        ~BulkLease() { release(); }
        void take(LoopBuffers& b) noexcept {
            held_ = &b;
            b.busy = true;
        }
        void release() noexcept {
            if (held_) held_->busy = false;
            held_ = nullptr;
        }
        bool held() const noexcept { return held_ != nullptr; }

    private:
        LoopBuffers* held_ = nullptr;
    };

    /// Opens the connection and runs its read loop. True: parked (see `park`).
    template <Transport T>
    asio::awaitable<bool> websocket_phase(T& t, std::unique_ptr<Request> req, std::size_t have) {
        open_connection(*req);
        if (handlers().open) co_await call_handler("open", [&] { return handlers().open(c_, *req); });
        req.reset();  // nothing keeps the upgrade request alive past open
        co_return co_await websocket_loop(*this, t, have);
    }

    /// The upgrade is done: the connection is open; a plain open handler runs (a coroutine one is the caller's).
    void open_connection(const Request& req) {
        c_.open(quiet_window(settings_));
        c_.counters().upgraded.add();
        if (host_.stopping) c_.close(close_code::going_away, "server shutting down");  // upgraded while stop() ran
        if (handlers().plain_open) call_plain("open", [&] { handlers().plain_open(c_, req); });
    }

    /// Where `consume` stopped.
    struct Stop {
        enum Next {
            read,     ///< the input is all handled: read more
            deliver,  ///< `frame` (a message, ping or pong) is for the coroutine message handler
            pause,    ///< the application paused reading, with input left
            fail,     ///< a protocol error: fail the connection with `failure`
            close,    ///< `frame` is the peer's close frame
        } next = read;
        Frame* frame = nullptr;  // in the connection's reader, until its next read
        std::pair<std::uint16_t, std::string_view> failure{};  // close code and reason (in the connection's state)
    };

    /// Reads frames from `input` (consumed as they are read) and hands them on: to a plain message handler here, to
    /// a coroutine one through the caller (`Stop::deliver`). Answers pings.
    Stop consume(std::span<const std::uint8_t>& input) {
        const Handlers<UserData>& on = handlers();
        Stop stop;
        while (!input.empty()) {
            if (c_.reading_held()) return {Stop::pause};
            MessageReader& reader = c_.reader();  // lent back between reads, while the connection is idle
            const ReadResult r = reader.read(input);
            input = input.subspan(r.consumed);
            if (r.event == ReadEvent::need_more) break;
            stop.frame = &reader.frame();
            if (r.event == ReadEvent::error) stop.failure = {reader.error_code(), reader.error_reason()};
            else if (r.event == ReadEvent::message && stop.frame->rsv != 0) stop.failure = inflate_message(*stop.frame);
            if (stop.failure.first != 0) stop.next = Stop::fail;
            else if (r.event == ReadEvent::close) stop.next = Stop::close;
            if (stop.next != Stop::read) return stop;
            c_.set_more_input(!input.empty());  // replies to the rest of this read will follow: coalesce them
            if (r.event == ReadEvent::message) c_.counters().messages_in.add();
            if (take_frame(r.event, *stop.frame)) {
                if (!on.plain_message) return {Stop::deliver, stop.frame};
                const void* const outer = std::exchange(detail::replying_to, &c_);
                call_plain("message", [&] { on.plain_message(c_, *stop.frame); });
                detail::replying_to = outer;
            }
        }
        return {Stop::read};
    }

    /// `websocket_loop` ends and the connection parks: a hibernation when the watchdog asked for one (counted here,
    /// where the coroutine's frames go, not where the watchdog asked: input that came first keeps the coroutine),
    /// once (`Connection::count_hibernation`).
    bool parks() noexcept {
        if (c_.count_hibernation()) c_.counters().hibernations.add();
        return true;
    }

    /// The read loop of an open connection, from `pending` (a message a parked connection read, for the coroutine
    /// handler) and then `have` bytes at the front of its own read buffer. Returns true when the connection parks
    /// (its read would block, and `may_park`; or the watchdog had it hibernate), false when the session is over.
    /// Static, with the session copied into its frame: a resumed connection's coroutine is this frame alone
    /// (`spawn_resume`), not this inside another that holds the session.
    template <Transport T>
    static asio::awaitable<bool> websocket_loop(Session s, T& t, std::size_t have, Frame* pending = nullptr) {
        Connection& c = s.c_;
        const Settings& settings = s.settings_;
        const Handlers<UserData>& on = s.handlers();
        std::span<const std::uint8_t> input(c.own_read_buffer().data(), have);
        bool own_input = true;  // `input` is in the connection's own buffer, grown for it: shrink it after
        BulkLease lease;               // holds the bulk buffer while `input` points into it
        // The yield posts through the loop's own executor: ~260 fewer instructions a read than the type-erased one.
        const asio::any_io_executor transport_executor = t.get_executor();
        const auto* loop_executor = transport_executor.target<asio::io_context::executor_type>();
        while (true) {
            if (on.plain_message) c.begin_batch();
            while (true) {
                Frame* frame = std::exchange(pending, nullptr);
                if (!frame) {
                    const Stop stop = s.consume(input);
                    if (stop.next == Stop::read) break;
                    if (stop.next == Stop::pause) {
                        co_await s.paused(input, lease, own_input);
                        continue;
                    }
                    if (stop.next != Stop::deliver) {
                        lease.release();
                        co_await s.end_of_input(t, stop);
                        co_return false;
                    }
                    frame = stop.frame;
                }
                c.end_hibernation();  // the handler heard from the peer: the coroutine stays until the next silence
                try {  // call_handler, written out: one coroutine frame less per message
                    asio::awaitable<void> handling = on.message(c, *frame);
                    co_await std::move(handling);
                } catch (...) {
                    s.handler_threw("message");
                }
            }
            lease.release();
            if (std::exchange(own_input, false)) c.drop_own_read_buffer();
            // Replies leave before the next read. A transport that knows it is drained is waited on at once (the
            // wait completes through the loop's queue, behind the other ready connections); otherwise the loop's
            // other ready connections run first, which also gives the peer time to answer, so that the read
            // usually finds its next message instead of coming back empty.
            c.end_batch();
            c.lend_message_buffer();
            if (settings.pause_reading_above != 0 && c.unsent() > settings.pause_reading_above) co_await c.wait_drained();
            if (c.reading_paused()) co_await c.wait_resumed();
            if (may_have_input(t)) {  // more may be there: let the loop's other ready connections run first
                if (loop_executor) co_await asio::post(*loop_executor, asio::use_awaitable);
                else co_await asio::post(transport_executor, asio::use_awaitable);
            }
            std::error_code ec;
            std::size_t n = 0;
            while (true) {
                n = s.read_available(t, input, lease, ec);
                if (!would_block(ec)) break;
                c.release_idle_buffers(idle_message_capacity);
                if (s.template may_park<T>()) co_return s.parks();
                if constexpr (ParkingTransport<T>) c.set_awaiting_input(true);
                co_await t.async_wait(asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, ec));
                if constexpr (ParkingTransport<T>) {
                    c.set_awaiting_input(false);
                    if (c.hibernating() && ec == asio::error::operation_aborted) co_return s.parks();  // see `hibernate`
                }
                if (ec) break;
            }
            if (ec) {
                c.settle_close_info({close_code::abnormal, ec.message(), false, false});
                co_return false;
            }
            c.note_activity(n);
        }
    }

    /// A protocol error (`Stop::fail`) or the peer's close frame (`Stop::close`) ended the input: the close
    /// handshake, then the session is over.
    template <Transport T>
    asio::awaitable<void> end_of_input(T& t, Stop stop) {
        if (stop.next == Stop::close) {
            co_await on_close_frame(t, *stop.frame);
            co_return;
        }
        const auto [code, reason] = stop.failure;
        log(LogLevel::debug, "connection {}: protocol error {}: {}", c_.id(), code, reason);
        c_.counters().protocol_error(code);
        c_.close_from_reader(code, reason, true);
        co_await c_.wait_drained();
        co_await linger(t);
    }

    // --- Starting in place ---------------------------------------------------------------------------------------
    // Most clients send their upgrade request at once, and most servers answer it with the RFC default or a plain hook:
    // such a connection upgrades without a coroutine (a request not there yet is waited for in the connection's own
    // block, as a parked connection's input), then reads as a parked connection does (with a coroutine message handler,
    // as a hibernating one: see below). Whatever has to wait goes on in a coroutine from where this stopped: a request
    // in pieces or a plain HTTP request (`run`, which parses the bytes read so far again), a refusal (written, then
    // lingered on), a coroutine open handler, a response the socket took only in part.

    /// A standard allocator over a connection's wait memory (`Connection::allocate_wait`): what its readiness waits
    /// and yields without a coroutine are made in, associated with their handlers.
    template <class T>
    struct WaitAllocator {
        using value_type = T;

        explicit WaitAllocator(Connection& c) noexcept : c(&c) {}
        template <class U>
        WaitAllocator(const WaitAllocator<U>& other) noexcept : c(other.c) {}  // NOLINT(google-explicit-constructor)

        T* allocate(std::size_t n) { return static_cast<T*>(c->allocate_wait(n * sizeof(T), alignof(T))); }
        void deallocate(T* p, std::size_t n) noexcept { c->deallocate_wait(p, n * sizeof(T)); }

        template <class U>
        bool operator==(const WaitAllocator<U>& other) const noexcept {
            return c == other.c;
        }

        Connection* c;
    };

    /// A readiness wait of a connection that keeps no coroutine (a new one's for its request, a parked one's for
    /// input when its socket cannot park it), in the connection's wait memory (`WaitAllocator`); `Next(host, c, ec)`
    /// goes on when it completes.
    template <auto Next>
    struct Awaiting {
        SessionHost<UserData>* host;
        std::shared_ptr<Connection> c;

        using allocator_type = WaitAllocator<void>;
        allocator_type get_allocator() const noexcept { return allocator_type(*c); }

        void operator()(std::error_code ec) { Next(*host, std::move(c), ec); }
    };

    /// A new connection's wait for its request ended: read it, or end the session (closed meanwhile: a timeout).
    template <Transport T>
    static void request_ready(SessionHost<UserData>& host, std::shared_ptr<Connection> c, std::error_code ec) {
        if (ec) return Session(host, *c).finish_now();
        start_in_place<T>(host, std::move(c));
    }
    template <Transport T>
    using Arriving = Awaiting<&request_ready<T>>;

    /// A new connection's first read: an upgrade request there whole is answered, and the connection opened and
    /// pumped (or handed to a coroutine, see above); nothing there yet is waited for.
    template <Transport T>
    static void start_in_place(SessionHost<UserData>& host, std::shared_ptr<Connection> c) {
        Session s(host, *c);
        T& t = c->template transport<T>();
        std::vector<std::uint8_t>& buffer = c->own_read_buffer();
        std::error_code ec;
        std::size_t have = t.read_some(asio::buffer(buffer), ec);
        if (would_block(ec)) return t.async_wait(asio::socket_base::wait_read, Arriving<T>{&host, std::move(c)});
        if (ec) return s.finish_now();
        c->note_activity(have);
        const auto executor = c->executor();
        RequestParser parser(host.settings.http);
        const std::size_t consumed = parser.feed(std::string_view(reinterpret_cast<const char*>(buffer.data()), have)).consumed;
        if (parser.status() != RequestParser::Status::complete || !is_upgrade_request(parser.request()))
            return asio::co_spawn(executor, run<T>(host, std::move(c), have), asio::detached);
        consume_front(buffer, have, consumed);  // `have`: the bytes after the request
        Request& req = parser.request();
        std::optional<SwitchingProtocols> default_answer = s.default_acceptance(req);
        Response res;
        std::string serialized;
        std::string_view bytes;
        if (default_answer) {
            bytes = default_answer->bytes();
        } else if (s.answer_handshake(req, res)) {
            try {
                serialized = res.serialize();
                bytes = serialized;
            } catch (const std::invalid_argument&) {  // a hook's malformed response: write_response answers 500
            }
        }
        if (bytes.empty()) {
            auto refusing = [](Session s, T& t, std::shared_ptr<Connection>, Response res) -> asio::awaitable<void> {
                co_await s.write_response(t, res, false);
                co_await s.finish_phase();
            };
            return asio::co_spawn(executor, refusing(s, t, std::move(c), std::move(res)), asio::detached);
        }
        const asio::const_buffer all = asio::buffer(bytes);
        const std::size_t written = t.write_some(std::span<const asio::const_buffer>(&all, 1), ec);
        c->count_out(written);
        if (ec) return s.finish_now();
        if (written < bytes.size() || host.handlers.open) {
            auto upgrading = [](SessionHost<UserData>& host, std::shared_ptr<Connection> c, std::unique_ptr<Request> req,
                                std::string rest, std::size_t have) -> asio::awaitable<void> {
                Session s(host, *c);
                T& t = c->template transport<T>();
                std::error_code ec;
                if (!rest.empty()) c->count_out(co_await write_all(t, asio::buffer(rest), ec, true));
                if (!ec && co_await s.websocket_phase(t, std::move(req), have)) {
                    park<T>(host, std::move(c));
                    co_return;
                }
                co_await s.finish_phase();
            };
            return asio::co_spawn(executor, upgrading(host, std::move(c), std::make_unique<Request>(std::move(req)),
                                                      std::string(bytes.substr(written)), have), asio::detached);
        }
        s.open_connection(req);
        // A coroutine message handler's connection parks as hibernating: its coroutine starts with its first message.
        if (!host.handlers.plain_message) c->start_hibernating();
        if (have != 0 || !s.template may_park<T>()) return spawn_resume<T>(host, std::move(c), {}, have);
        c->drop_own_read_buffer();
        pump<T>(host, std::move(c));
    }

    // --- Parking -------------------------------------------------------------------------------------------------
    // An open connection whose read would block keeps no coroutine when its message handler is a plain function: its
    // session coroutine ends, and its socket holds it as a parked reader (`ParkingTransport`: no wait operation).
    // When the peer sends, `pump` reads and handles the input as the read loop would, without a coroutine, and parks
    // again; whatever has to wait (a close handshake, a protocol error, a paused connection, a full output queue)
    // goes on in a coroutine (`spawn_resume`), which parks again once that is over. With a coroutine message handler
    // the session stays a coroutine (its wake-ups would otherwise allocate a coroutine each) until the connection has
    // been silent for a heartbeat interval: then it hibernates (`Connection::hibernate`) and parks as well, and a
    // message for the handler starts a coroutine again, which stays until the next such silence. One opened in place
    // starts that way, hibernating: its first message starts its coroutine. Over TLS the same (a wss connection
    // starts in its coroutine, which runs the TLS handshake).

    /// At a read that would block: whether the connection parks instead of waiting in the coroutine.
    template <Transport T>
    bool may_park() const noexcept {
        return ParkingTransport<T> && (handlers().plain_message || c_.hibernating()) &&
               c_.status() == ConnectionStatus::active && !c_.reading_paused();
    }

    /// Whether `pump` may read: an open connection with reading not paused and its output below the mark.
    template <Transport T>
    bool pumpable() const noexcept {
        return may_park<T>() && !(settings_.pause_reading_above != 0 && c_.unsent() > settings_.pause_reading_above);
    }

    /// A parked connection's wait for input ended: pump it, or end the session in a coroutine. `input_ready`, `pump`
    /// and `park` take the connection's `shared_ptr` by reference, from the completed wait's handler (which holds it
    /// until they return), and move it only into what comes next: no reference count moved per hop.
    template <Transport T>
    static void input_ready(SessionHost<UserData>& host, std::shared_ptr<Connection>&& c, std::error_code ec) {
        if (ec) return spawn_resume<T>(host, std::move(c), ec);
        pump<T>(host, std::move(c));
    }
    template <Transport T>
    using Parked = Awaiting<&input_ready<T>>;
    /// `input_ready` as a parked reader's callback (`TcpTransport::park`).
    template <Transport T>
    static void parked_input(void* host, std::shared_ptr<void>&& c, std::error_code ec) {
        input_ready<T>(*static_cast<SessionHost<UserData>*>(host), std::static_pointer_cast<Connection>(std::move(c)),
                       ec);
    }

    /// Waits for input without a coroutine: parked on the socket itself where it can be, otherwise a readiness wait
    /// in the connection's wait memory.
    template <Transport T>
    static void park(SessionHost<UserData>& host, std::shared_ptr<Connection>&& c) {
        T& t = c->template transport<T>();
        if constexpr (requires { t.park(&parked_input<T>, &host, c); })
            if (t.park(&parked_input<T>, &host, c)) return;
        t.async_wait(asio::socket_base::wait_read, Parked<T>{&host, std::move(c)});
    }

    /// The read loop's turn for a parked connection that may have input: one read, handled; then a yield when more
    /// may be there, or parked again.
    template <Transport T>
    static void pump(SessionHost<UserData>& host, std::shared_ptr<Connection>&& c) {
        Session s(host, *c);
        if (!s.template pumpable<T>()) return spawn_resume<T>(host, std::move(c), {});
        T& t = c->template transport<T>();
        BulkLease lease;
        std::span<const std::uint8_t> input;
        std::error_code ec;
        const std::size_t n = s.read_available(t, input, lease, ec);
        if (would_block(ec)) {
            c->release_idle_buffers(idle_message_capacity);
            return park<T>(host, std::move(c));
        }
        if (ec) return spawn_resume<T>(host, std::move(c), ec);
        c->note_activity(n);
        c->begin_batch();
        const Stop stop = s.consume(input);
        if (stop.next == Stop::deliver) {  // a hibernating connection's message: the coroutine handler's, in a coroutine
            const std::size_t left = s.keep_input(input).size();  // the rest of the read, in the connection's own buffer
            lease.release();
            c->end_batch();
            return spawn_resume<T>(host, std::move(c), {}, left, stop.frame);
        }
        // The peer's close frame, unless a coroutine message handler is to hear of it (`deliver_close`): answered in
        // place; what has to wait goes on in a coroutine.
        if (stop.next == Stop::close && !s.coroutine_hears_close()) {
            lease.release();
            c->end_batch();
            s.answer_close(*stop.frame);
            const bool drained = c->drain_now();
            if (drained) s.closed_cleanly(t);
            if (drained && !host.handlers.close) return s.finish_now();
            auto closing = [](Session s, T& t, std::shared_ptr<Connection>, bool drained) -> asio::awaitable<void> {
                if (!drained) {
                    co_await s.c_.wait_drained();
                    s.closed_cleanly(t);
                }
                co_await s.finish_phase();
            };
            const auto executor = c->executor();
            asio::co_spawn(executor, closing(s, t, std::move(c), drained), asio::detached);
            return;
        }
        if (stop.next == Stop::fail || stop.next == Stop::close) {
            lease.release();
            c->end_batch();
            auto ending = [](Session s, T& t, std::shared_ptr<Connection>, Stop stop) -> asio::awaitable<void> {
                co_await s.end_of_input(t, stop);
                co_await s.finish_phase();
            };
            const auto executor = c->executor();
            asio::co_spawn(executor, ending(s, t, std::move(c), stop), asio::detached);
            return;
        }
        // Paused with input left: the rest waits in the connection's own buffer.
        const std::size_t left = stop.next == Stop::pause ? s.keep_input(input).size() : 0;
        lease.release();
        c->end_batch();
        if (left != 0) return spawn_resume<T>(host, std::move(c), {}, left);
        c->lend_message_buffer();
        if (!s.template pumpable<T>()) return spawn_resume<T>(host, std::move(c), {});
        if (!may_have_input(t)) {
            c->release_idle_buffers(idle_message_capacity);
            return park<T>(host, std::move(c));
        }
        // More may be there: the loop's other ready connections run first (the yield, in the wait memory too).
        const auto executor = c->executor();
        const WaitAllocator<void> allocator(*c);
        asio::post(executor, asio::bind_allocator(allocator,
                                                  [&host, c = std::move(c)]() mutable { pump<T>(host, std::move(c)); }));
    }

    /// Goes on with a parked connection in a coroutine: the read loop from `pending` (a message for the coroutine
    /// handler, in the connection's reader) and `have` bytes in the connection's own buffer, or the end of the
    /// session when its wait failed (`ec`). The read loop is the coroutine's one frame of swirl's; what follows it
    /// (parked again, or the session's end) runs in its completion, once that frame is gone.
    template <Transport T>
    static void spawn_resume(SessionHost<UserData>& host, std::shared_ptr<Connection> c, std::error_code ec,
                             std::size_t have = 0, Frame* pending = nullptr) {
        if (ec) {
            c->settle_close_info({close_code::abnormal, ec.message(), false, false});
            return spawn_finish(host, std::move(c));
        }
        Connection& connection = *c;
        asio::co_spawn(connection.executor(),
                       websocket_loop(Session(host, connection), connection.template transport<T>(), have, pending),
                       [&host, c = std::move(c)](std::exception_ptr e, bool parks) mutable {
                           if (!e && parks) park<T>(host, std::move(c));
                           else spawn_finish(host, std::move(c));  // (a loop that threw ends the session too)
                       });
    }

    /// Ends the session: in place without a coroutine close handler (`finish_now`), else in a coroutine of its own
    /// (`finish_phase`).
    static void spawn_finish(SessionHost<UserData>& host, std::shared_ptr<Connection> c) {
        if (!host.handlers.close) return Session(host, *c).finish_now();
        auto finishing = [](Session s, std::shared_ptr<Connection>) -> asio::awaitable<void> {
            co_await s.finish_phase();
        };
        const auto executor = c->executor();
        const Session s(host, *c);
        asio::co_spawn(executor, finishing(s, std::move(c)), asio::detached);
    }

    /// The application paused reading (`Connection::pause_reading`) with `input` left: the replies so far leave, the
    /// rest of `input` moves out of the loop's bulk buffer into the connection's own (other connections need the
    /// bulk buffer meanwhile), and the session waits until reading may go on.
    asio::awaitable<void> paused(std::span<const std::uint8_t>& input, BulkLease& lease, bool& own_input) {
        if (lease.held()) {
            input = keep_input(input);
            own_input = true;
            lease.release();
        }
        c_.end_batch();
        co_await c_.wait_resumed();
        if (handlers().plain_message) c_.begin_batch();
    }

    /// Copies `input` (in the bulk buffer, or already in the connection's own) to the front of the connection's own
    /// read buffer, grown as needed; returns it there.
    std::span<const std::uint8_t> keep_input(std::span<const std::uint8_t> input) {
        std::vector<std::uint8_t>& own = c_.own_read_buffer();
        if (input.empty()) return {};  // (a parked connection's message may end its read: no buffer to copy into)
        if (own.size() < input.size()) own.resize(input.size());
        std::memmove(own.data(), input.data(), input.size());
        return {own.data(), input.size()};
    }

    /// Reads what the transport holds without waiting: into the event loop's bulk buffer (leased to `input`), or
    /// into the connection's own while a suspended handler elsewhere holds the bulk buffer.
    template <Transport T>
    std::size_t read_available(T& t, std::span<const std::uint8_t>& input, BulkLease& lease, std::error_code& ec) {
        LoopBuffers& bulk = c_.loop_buffers();
        const bool shared = !bulk.busy;
        std::vector<std::uint8_t>& own = c_.own_read_buffer();
        if (!shared && own.empty()) own.resize(connection_read_size);
        std::vector<std::uint8_t>& bytes = shared ? bulk.bytes : own;
        const std::size_t n = t.read_some(asio::buffer(bytes), ec);
        if (ec) return 0;
        if (shared) lease.take(bulk);
        input = std::span<const std::uint8_t>(bytes.data(), n);
        return n;
    }

    /// False when the transport knows a read would find nothing (Transport's optional `may_have_input`).
    template <Transport T>
    static bool may_have_input(const T& t) noexcept {
        if constexpr (requires { { t.may_have_input() } -> std::convertible_to<bool>; }) return t.may_have_input();
        else return true;
    }

    /// Answers a ping; true when the message handler is to hear of the message, ping or pong.
    bool take_frame(ReadEvent event, const Frame& frame) {
        if (c_.status() != ConnectionStatus::active) return false;  // closing: the app no longer hears from the peer
        if (event == ReadEvent::ping) {
            if (settings_.auto_pong) c_.answer_ping(frame.payload);
            return settings_.deliver_ping && handlers().has_message();
        }
        if (event == ReadEvent::pong) return settings_.deliver_pong && handlers().has_message();
        return event == ReadEvent::message && handlers().has_message();
    }

    /// The peer sent a close frame: answer it (unless we already sent ours), flush, then close TCP first.
    template <Transport T>
    asio::awaitable<void> on_close_frame(T& t, Frame& frame) {
        if (coroutine_hears_close()) co_await call_handler("message", [&] { return handlers().message(c_, frame); });
        answer_close(frame);
        co_await c_.wait_drained();
        closed_cleanly(t);
    }

    /// Whether the peer's close frame is for a coroutine message handler (`deliver_close`; see `on_close_frame`).
    bool coroutine_hears_close() const {
        return settings_.deliver_close && !handlers().plain_message && handlers().message &&
               c_.status() == ConnectionStatus::active;
    }

    /// The peer's close frame: a plain message handler hears of it (`deliver_close`; a coroutine one is the
    /// caller's), and our close frame is queued in answer.
    void answer_close(Frame& frame) {
        if (settings_.deliver_close && c_.status() == ConnectionStatus::active && handlers().plain_message)
            call_plain("message", [&] { handlers().plain_message(c_, frame); });
        c_.close_from_reader(frame.code, frame.reason, false);
    }

    /// Both close frames crossed and ours is written: the server closes TCP first (RFC 6455 §7.1.1).
    template <Transport T>
    void closed_cleanly(T& t) {
        c_.mark_clean_close();
        std::error_code ec;
        t.shutdown_send(ec);
    }

    /// Runs a user handler; an exception is logged and closes the connection with 1011. False when it threw.
    template <class Call>
    asio::awaitable<bool> call_handler(std::string_view event, Call&& call) {
        try {
            co_await call();
            co_return true;
        } catch (...) {
            handler_threw(event);
        }
        co_return false;
    }

    /// `call_handler` for a plain (non-coroutine) handler.
    template <class Call>
    void call_plain(std::string_view event, Call&& call) {
        try {
            call();
        } catch (...) {
            handler_threw(event);
        }
    }

    /// In a catch block: logs the exception and closes the connection with 1011.
    void handler_threw(std::string_view event) {
        log(LogLevel::error, "connection {}: {} handler threw: {}", c_.id(), event,
            detail::describe_exception(std::current_exception()));
        c_.close(close_code::internal_error, "internal error");
    }

    /// How long an open connection may stay silent before the watchdog acts: the shorter of the enabled heartbeat
    /// interval and idle timeout (zero: neither is enabled).
    static std::chrono::steady_clock::duration quiet_window(const Settings& settings) noexcept {
        std::chrono::steady_clock::duration window{};
        for (const auto limit : {settings.ping_interval, settings.idle_timeout})
            if (limit.count() > 0 && (window == window.zero() || limit < window)) window = limit;
        return window;
    }

public:
    /// The watchdog: enforces the handshake, heartbeat, idle and close deadlines of connection `c`, called by its
    /// event loop's deadlines (server/detail/timing_wheel.hpp) when the entry `c->watch()` scheduled comes due.
    static void on_deadline(SessionHost<UserData>& host, Connection& connection) {
        Connection* const c = &connection;
        const Settings& settings = host.settings;
        const auto log = [&](fmt::format_string<ConnectionId> format) {
            detail::log(settings.log_level, LogLevel::debug, format, c->id());
        };
        if (c->finished()) return;
        const auto now = clock::now();
        if (now < c->deadline()) return c->watch();  // moved meanwhile
        switch (c->status()) {
        case ConnectionStatus::connection:
        case ConnectionStatus::handshake:
            log("connection {}: handshake timeout");
            break;
        case ConnectionStatus::active: {
            if (c->reading_paused()) {
                // The peer's bytes (pongs included) wait unread: silence means nothing. Pings still go out: a peer
                // that vanished answers one with a reset, which fails a later write and so ends the connection.
                if (settings.ping_interval.count() > 0) c->ping();
                c->set_awaiting_pong(false);
                c->move_deadline(c->quiet_window() == c->quiet_window().zero() ? clock::time_point::max()
                                                                              : now + c->quiet_window());
                return c->watch();
            }
            const auto silence = now - c->last_heard();
            if (settings.idle_timeout.count() > 0 && silence >= settings.idle_timeout) {
                log("connection {}: idle timeout");
                c->close(close_code::going_away, "idle timeout");  // re-arms the deadline for the close
                c->move_deadline(clock::time_point::max());
                return c->watch();
            }
            if (c->awaiting_pong()) {  // pinged, and nothing came back within pong_timeout
                log("connection {}: no pong within pong_timeout");
                c->settle_close_info({close_code::abnormal, "pong timeout", true, false});
                break;
            }
            auto next = c->last_heard() + c->quiet_window();
            if (settings.ping_interval.count() > 0 && silence >= settings.ping_interval) {
                // Silent for a heartbeat interval: a session coroutine waiting for input ends, until the next message.
                if (!host.handlers.plain_message) c->hibernate();
                c->ping();
                c->set_awaiting_pong(settings.pong_timeout.count() > 0);
                next = now + (c->awaiting_pong() ? settings.pong_timeout : settings.ping_interval);
                if (settings.idle_timeout.count() > 0) next = std::min(next, c->last_heard() + settings.idle_timeout);
            }
            c->move_deadline(next);
            return c->watch();
        }
        case ConnectionStatus::closing:
        case ConnectionStatus::closed:
            log("connection {}: close timeout");
            break;
        }
        c->close_transport();
    }

private:
    static void consume_front(std::vector<std::uint8_t>& buf, std::size_t& have, std::size_t n) {
        if (n != 0 && n < have) std::memmove(buf.data(), buf.data() + n, have - n);
        have -= n;
    }

    SessionHost<UserData>& host_;
    const Settings& settings_;
    Connection& c_;
};

} // namespace swirl::detail
