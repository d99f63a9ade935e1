#pragma once
/// The WebSocket server: Swoole's events (handshake, open, message, close, request) as coroutines, and its
/// methods (push, broadcast, disconnect, exist, client_info, timers, stop) safe to call from any thread.

#include <swirl/server/connection.hpp>
#include <swirl/server/detail/descriptor_limit.hpp>
#include <swirl/server/detail/log.hpp>
#include <swirl/server/detail/loop_buffers.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/handshake.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/http_response.hpp>
#include <swirl/protocol/message_reader.hpp>
#include <swirl/server/settings.hpp>

#include <swirl/detail/asio.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace swirl {

using TimerId = std::uint64_t;

namespace detail {
/// An open connection reads into its event loop's shared bulk buffer and keeps no read buffer while idle. It has a
/// small one of its own for the HTTP request, and for reads while another connection holds the bulk buffer.
inline constexpr std::size_t connection_read_size = 1024;
/// A connection that goes idle lends its message buffer to the loop's pool; one the pool has no room for is kept
/// up to the size its output queues keep, not a burst's.
inline constexpr std::size_t idle_message_capacity = OutputQueue::default_kept_capacity;

/// Calls `f(args...)`, awaiting the result when it is an awaitable.
template <class F, class... Args>
asio::awaitable<void> invoke_maybe_async(F& f, Args&&... args) {
    if constexpr (std::is_same_v<std::invoke_result_t<F&, Args...>, asio::awaitable<void>>)
        co_await std::invoke(f, std::forward<Args>(args)...);
    else
        std::invoke(f, std::forward<Args>(args)...);
}
} // namespace detail

/// `UserData` is default-constructed per connection and reachable as `connection.data()`.
template <class UserData = std::monostate>
class Server {
public:
    using Connection = swirl::Connection<UserData>;
    using HandshakeHandler = std::function<asio::awaitable<bool>(Connection&, const Request&, Response&)>;
    using OpenHandler = std::function<asio::awaitable<void>(Connection&, const Request&)>;
    using MessageHandler = std::function<asio::awaitable<void>(Connection&, Frame&)>;
    using PlainMessageHandler = std::function<void(Connection&, Frame&)>;
    using CloseHandler = std::function<asio::awaitable<void>(Connection&, const CloseInfo&)>;
    using RequestHandler = std::function<asio::awaitable<void>(Connection&, const Request&, Response&)>;

    explicit Server(Settings settings = {}) : settings_(std::move(settings)) {
        if (settings_.threads == 0) settings_.threads = 1;
        for (unsigned i = 0; i < settings_.threads; ++i) {
            bulk_.push_back(std::make_unique<detail::LoopBuffers>());
            contexts_.push_back(std::make_unique<asio::io_context>(1));
            guards_.emplace_back(contexts_.back()->get_executor());
        }
        acceptor_.emplace(*contexts_.front());
    }

    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    ~Server() {
        stop();
        wait();
    }

    /// Custom handshake: return true to accept (after filling `res` via `accept_handshake`), false to reject with
    /// whatever status, headers and body `res` holds. `on_open` still fires after an accepted custom handshake.
    void on_handshake(HandshakeHandler h) { on_handshake_ = std::move(h); }
    void on_open(OpenHandler h) { on_open_ = std::move(h); }
    void on_message(MessageHandler h) {
        on_message_ = std::move(h);
        on_message_plain_ = nullptr;
    }
    /// A message handler that never waits (returns void): called in place, without a coroutine frame per message.
    template <class F>
        requires std::is_void_v<std::invoke_result_t<F&, Connection&, Frame&>>
    void on_message(F h) {
        on_message_plain_ = std::move(h);
        on_message_ = nullptr;
    }
    void on_close(CloseHandler h) { on_close_ = std::move(h); }
    /// Plain HTTP requests on the same port. Without it, non-upgrade requests get 400.
    void on_request(RequestHandler h) { on_request_ = std::move(h); }

    /// Handler-class style: registers each of `on_handshake`, `on_open`, `on_message`, `on_close`, `on_request`
    /// that `handler` has. `handler` must outlive the server.
    template <class Handler>
    void use(Handler& handler) {
        if constexpr (requires(Connection& c, const Request& q, Response& r) { handler.on_handshake(c, q, r); })
            on_handshake([&handler](Connection& c, const Request& q, Response& r) { return handler.on_handshake(c, q, r); });
        if constexpr (requires(Connection& c, const Request& q) { handler.on_open(c, q); })
            on_open([&handler](Connection& c, const Request& q) { return handler.on_open(c, q); });
        if constexpr (requires(Connection& c, Frame& f) { handler.on_message(c, f); })
            on_message([&handler](Connection& c, Frame& f) { return handler.on_message(c, f); });
        if constexpr (requires(Connection& c, const CloseInfo& i) { handler.on_close(c, i); })
            on_close([&handler](Connection& c, const CloseInfo& i) { return handler.on_close(c, i); });
        if constexpr (requires(Connection& c, const Request& q, Response& r) { handler.on_request(c, q, r); })
            on_request([&handler](Connection& c, const Request& q, Response& r) { return handler.on_request(c, q, r); });
    }

    const Settings& settings() const noexcept { return settings_; }

    /// Swoole's static `WebSocket\Server::pack` / `unpack` (see `swirl::pack`, `swirl::unpack`).
    static std::string pack(std::string_view data, Opcode opcode = Opcode::text, bool fin = true) {
        return swirl::pack(data, opcode, fin);
    }
    static std::optional<Frame> unpack(std::string_view bytes) { return swirl::unpack(bytes); }

    /// Binds and listens; throws `std::system_error` on failure. Called by `start`/`run` when needed.
    void listen() {
        if (listening_) return;
        asio::ip::tcp::resolver resolver(*contexts_.front());
        const auto endpoint = *resolver.resolve(settings_.host, std::to_string(settings_.port),
                                                asio::ip::tcp::resolver::passive).begin();
        acceptor_->open(endpoint.endpoint().protocol());
        acceptor_->set_option(asio::ip::tcp::acceptor::reuse_address(true));
        acceptor_->bind(endpoint.endpoint());
        acceptor_->listen(settings_.backlog);
        listening_ = true;
        fit_connection_limit();
        asio::co_spawn(*contexts_.front(), accept_loop(), asio::detached);
    }

    /// How many connections the server admits before answering 503: `max_connections`, or fewer when the open-file
    /// limit cannot be raised far enough (see `listen()`).
    std::size_t connection_limit() const noexcept { return connection_limit_; }

    /// The bound address; with `port = 0`, where the kernel put us.
    asio::ip::tcp::endpoint local_endpoint() const { return acceptor_->local_endpoint(); }

    /// Runs the server on this thread plus `threads - 1` others until `stop()`.
    void run() {
        listen();
        for (std::size_t i = 1; i < contexts_.size(); ++i) threads_.emplace_back([this, i] { contexts_[i]->run(); });
        contexts_.front()->run();
        wait();
    }

    /// Runs the server on `threads` background threads and returns at once; see `wait()`.
    void start() {
        listen();
        for (std::size_t i = 0; i < contexts_.size(); ++i) threads_.emplace_back([this, i] { contexts_[i]->run(); });
    }

    /// Joins the threads started by `start()` / `run()` (after `stop()`).
    /// Called from one of the server's own threads, that thread is left to return from `run()` by itself.
    void wait() {
        std::vector<std::thread> own;
        for (auto& t : threads_) {
            if (t.get_id() == std::this_thread::get_id()) own.push_back(std::move(t));
            else if (t.joinable()) t.join();
        }
        threads_ = std::move(own);
    }

    /// Graceful shutdown from any thread: stop accepting, close every connection with 1001, wait for them
    /// (bounded by `close_timeout`), then let `run()` return.
    void stop() {
        if (stopping_.exchange(true)) return;
        asio::co_spawn(*contexts_.front(), shutdown(), asio::detached);
    }

    bool stopping() const noexcept { return stopping_.load(); }

    /// Pushes one frame to connection `id`; the result says whether it was queued and why not.
    PushResult push(ConnectionId id, std::string_view data, Opcode opcode = Opcode::text, bool fin = true) {
        std::lock_guard lock(registry_mutex_);
        const auto it = connections_.find(id);
        if (it == connections_.end()) return {PushStatus::no_such_connection};
        return it->second->send(data, opcode, fin);
    }

    bool ping(ConnectionId id, std::string_view payload = {}) {
        return static_cast<bool>(push(id, payload, Opcode::ping));
    }

    /// Starts the close handshake with `id`; false when it is not an open WebSocket connection.
    bool disconnect(ConnectionId id, std::uint16_t code = close_code::normal, std::string_view reason = {}) {
        const auto c = find(id);
        return c && c->close(code, reason);
    }

    bool exist(ConnectionId id) const { return find(id) != nullptr; }

    bool is_established(ConnectionId id) const {
        const auto c = find(id);
        return c && c->is_established();
    }

    std::optional<ClientInfo> client_info(ConnectionId id) const {
        const auto c = find(id);
        if (!c) return std::nullopt;
        return c->info();
    }

    /// The connection object (to reach its user data), or null.
    std::shared_ptr<Connection> find(ConnectionId id) const {
        std::lock_guard lock(registry_mutex_);
        const auto it = connections_.find(id);
        return it == connections_.end() ? nullptr : it->second;
    }

    /// Ids of every current connection (any status).
    std::vector<ConnectionId> connections() const {
        std::lock_guard lock(registry_mutex_);
        std::vector<ConnectionId> ids;
        ids.reserve(connections_.size());
        for (const auto& [id, c] : connections_) ids.push_back(id);
        return ids;
    }

    std::size_t connection_count() const {
        std::lock_guard lock(registry_mutex_);
        return connections_.size();
    }

    /// Calls `f(connection)` for each current connection, outside any lock (f may push or disconnect).
    template <class F>
    void for_each_connection(F&& f) const {
        for (const auto& c : snapshot()) f(*c);
    }

    /// Sends one message to every established connection, encoding the frame once.
    /// Returns how many connections queued it.
    /// Only data frames and pings of at most 125 bytes are broadcast; anything else returns 0.
    std::size_t broadcast(std::string_view data, Opcode opcode = Opcode::text) {
        if (opcode == Opcode::close || opcode == Opcode::pong || (opcode == Opcode::ping && data.size() > 125)) return 0;
        const auto frame = std::make_shared<const std::string>(pack(data, opcode));
        std::size_t queued = 0;
        for (const auto& c : snapshot())
            if (c->is_established() && c->send_encoded(frame)) ++queued;
        return queued;
    }

    /// Runs `f` (or `f(timer_id)`) every `interval` on the first event loop until `clear(id)`. `f` may be a
    /// coroutine returning `asio::awaitable<void>`. Returns 0 (no timer) once `stop()` was called.
    template <class F>
    TimerId tick(std::chrono::milliseconds interval, F f) {
        return add_timer(interval, true, std::move(f));
    }

    /// Runs `f` (or `f(timer_id)`) once after `delay`.
    template <class F>
    TimerId after(std::chrono::milliseconds delay, F f) {
        return add_timer(delay, false, std::move(f));
    }

    /// Cancels a timer; false if it already finished or never existed.
    bool clear(TimerId id) {
        std::shared_ptr<TimerState> t;
        {
            std::lock_guard lock(timers_mutex_);
            const auto it = timers_.find(id);
            if (it == timers_.end()) return false;
            t = it->second;
            timers_.erase(it);
        }
        t->cancelled = true;
        asio::post(*contexts_.front(), [t] { t->timer.cancel(); });
        return true;
    }

    /// Runs `f` on the first event loop soon, after the current handler yields.
    template <class F>
    void defer(F f) {
        asio::co_spawn(*contexts_.front(), [f = std::move(f)]() mutable -> asio::awaitable<void> {
            co_await detail::invoke_maybe_async(f);
        }, asio::detached);
    }

    /// The first event loop, for user tasks (`co_spawn(server.context(), ...)`).
    asio::io_context& context() noexcept { return *contexts_.front(); }

private:
    friend class swirl::Connection<UserData>;

    struct TimerState {
        explicit TimerState(asio::io_context& ctx) : timer(ctx) {}
        asio::steady_timer timer;
        std::atomic<bool> cancelled{false};
    };

    template <class... Args>
    void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) const {
        detail::log(settings_.log_level, level, format, std::forward<Args>(args)...);
    }

    std::vector<std::shared_ptr<Connection>> snapshot() const {
        std::lock_guard lock(registry_mutex_);
        std::vector<std::shared_ptr<Connection>> all;
        all.reserve(connections_.size());
        for (const auto& [id, c] : connections_) all.push_back(c);
        return all;
    }

    template <class F>
    TimerId add_timer(std::chrono::milliseconds interval, bool repeat, F f) {
        const TimerId id = next_timer_id_.fetch_add(1);
        auto state = std::make_shared<TimerState>(*contexts_.front());
        {
            std::lock_guard lock(timers_mutex_);
            if (stopping_) return 0;  // checked under the lock that shutdown() sweeps timers with
            timers_.emplace(id, state);
        }
        asio::co_spawn(*contexts_.front(), run_timer(id, std::move(state), interval, repeat, std::move(f)), asio::detached);
        return id;
    }

    template <class F>
    asio::awaitable<void> run_timer(TimerId id, std::shared_ptr<TimerState> state, std::chrono::milliseconds interval,
                                    bool repeat, F f) {
        auto next = std::chrono::steady_clock::now() + interval;
        do {
            state->timer.expires_at(next);
            std::error_code ec;
            co_await state->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (ec || state->cancelled) co_return;
            try {
                if constexpr (std::is_invocable_v<F&, TimerId>) co_await detail::invoke_maybe_async(f, id);
                else co_await detail::invoke_maybe_async(f);
            } catch (const std::exception& e) {
                log(LogLevel::error, "timer {} threw: {}", id, e.what());
            }
            next += interval;
        } while (repeat && !state->cancelled);
        std::lock_guard lock(timers_mutex_);
        timers_.erase(id);
    }

    asio::awaitable<void> accept_loop() {
        std::size_t next_context = 0;
        Throttle accept_failed, limit_reached;
        while (!stopping_) {
            auto& ctx = *contexts_[next_context];
            detail::LoopBuffers& bulk = *bulk_[next_context];
            next_context = (next_context + 1) % contexts_.size();
            asio::ip::tcp::socket socket(ctx);
            std::error_code ec;
            co_await acceptor_->async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
            if (stopping_) co_return;  // an accept that completed while stop() closed the acceptor
            if (ec) {
                if (ec == asio::error::operation_aborted) co_return;
                if (std::size_t held = 0; accept_failed.allow(held))
                    log(LogLevel::warning, "accept failed: {}{}", ec.message(), Throttle::note(held));
                // Out of descriptors and the like: back off instead of spinning.
                asio::steady_timer pause(*contexts_.front(), std::chrono::milliseconds(50));
                co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                continue;
            }
            if (connection_count() >= connection_limit_) {
                if (std::size_t held = 0; limit_reached.allow(held))
                    log(LogLevel::warning, "connection limit {} reached, answering 503{}", connection_limit_,
                        Throttle::note(held));
                asio::co_spawn(ctx, reject_busy(std::move(socket)), asio::detached);
                continue;
            }
            auto c = std::make_shared<Connection>(*this, next_connection_id_.fetch_add(1), std::move(socket));
            c->bulk_ = &bulk;
            {
                std::lock_guard lock(registry_mutex_);
                connections_.emplace(c->id(), c);
            }
            asio::co_spawn(ctx, session(std::move(c)), asio::detached);
        }
    }

    /// Descriptors kept free beyond one per connection: the listener, the event loops, 503 answers in flight and
    /// whatever files the application opens.
    static constexpr std::size_t descriptor_headroom = 64;

    /// Raises the open-file limit so that `max_connections` can be reached; where the hard limit forbids it, admits
    /// only as many connections as fit (the rest get 503, not a silent wait in the backlog) and warns once.
    void fit_connection_limit() {
        const std::size_t in_use = detail::open_descriptors();
        const std::size_t wanted = settings_.max_connections + in_use + descriptor_headroom;
        const detail::DescriptorLimit limit = detail::raise_descriptor_limit(wanted);
        connection_limit_ = settings_.max_connections;
        if (limit.soft >= wanted) return;
        const std::size_t spare = limit.soft > in_use ? limit.soft - in_use : 0;
        connection_limit_ = spare > 2 * descriptor_headroom ? spare - descriptor_headroom : std::max<std::size_t>(spare / 2, 1);
        log(LogLevel::warning, "max_connections {} cannot be reached: the open-file limit is {} (hard limit {}); "
                               "connections beyond {} get 503. Raise it (ulimit -n, systemd LimitNOFILE=).",
            settings_.max_connections, limit.soft, limit.hard, connection_limit_);
    }

    /// Lets a repeated warning through at most once per `period`, counting what it held back.
    struct Throttle {
        std::chrono::steady_clock::duration period = std::chrono::seconds(10);
        std::chrono::steady_clock::time_point next{};
        std::size_t held_back = 0;
        /// True when the warning may be logged now; `held` is how many were suppressed since the last one.
        bool allow(std::size_t& held) {
            const auto now = std::chrono::steady_clock::now();
            if (now < next) {
                ++held_back;
                return false;
            }
            next = now + period;
            held = std::exchange(held_back, 0);
            return true;
        }
        static std::string note(std::size_t held) {
            return held == 0 ? std::string() : fmt::format(" ({} more since the last such line)", held);
        }
    };

    /// Answers 503 without reading the request, then lingers (at most a second) so the answer is not lost to a
    /// reset caused by the unread request.
    static asio::awaitable<void> reject_busy(asio::ip::tcp::socket socket) {
        const std::string response = Response(503, "too many connections\n").set_header("Connection", "close").serialize();
        std::error_code ec;
        co_await asio::async_write(socket, asio::buffer(response), asio::redirect_error(asio::use_awaitable, ec));
        socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
        asio::steady_timer limit(socket.get_executor(), std::chrono::seconds(1));
        limit.async_wait([&socket](std::error_code) {
            std::error_code ignored;
            socket.close(ignored);
        });
        char sink[1024];
        while (!ec) co_await socket.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
        limit.cancel();
        co_await asio::post(socket.get_executor(), asio::use_awaitable);  // let the cancelled wait finish first
    }

    /// One connection from accept to close.
    asio::awaitable<void> session(std::shared_ptr<Connection> c) {
        std::error_code ec;
        c->socket_.set_option(asio::ip::tcp::no_delay(true), ec);
        c->socket_.non_blocking(true, ec);  // follow-up reads into the bulk buffer must not block
        c->read_buffer_.resize(detail::connection_read_size);
        if (settings_.handshake_timeout.count() > 0)
            c->deadline_ = Connection::clock::now() + settings_.handshake_timeout;
        arm_watchdog(c);

        std::size_t leftover = 0;
        std::optional<Request> upgrade = co_await http_phase(*c, leftover);
        if (upgrade) co_await websocket_phase(*c, *upgrade, leftover);

        const bool was_open = c->opened_;
        c->finished_ = true;
        c->watchdog_.cancel();
        c->socket_.close(ec);
        c->status_.store(ConnectionStatus::closed, std::memory_order_release);
        if (was_open && on_close_) {
            CloseInfo info;
            {
                std::lock_guard lock(c->mutex_);
                info = c->close_info_;
            }
            co_await call_handler(*c, "close", [&] { return on_close_(*c, info); });
        }
        std::lock_guard lock(registry_mutex_);
        connections_.erase(c->id());
    }

    /// Reads HTTP requests until an upgrade (returned) or the end of the connection (nullopt).
    asio::awaitable<std::optional<Request>> http_phase(Connection& c, std::size_t& leftover) {
        RequestParser parser(settings_.http);
        std::size_t have = 0;  // unparsed bytes at the front of the read buffer
        while (true) {
            while (parser.status() == RequestParser::Status::incomplete) {
                if (have == 0) {
                    std::error_code ec;
                    have = co_await c.socket_.async_read_some(asio::buffer(c.read_buffer_), asio::redirect_error(asio::use_awaitable, ec));
                    if (ec) co_return std::nullopt;
                    c.note_activity(have);
                }
                const auto r = parser.feed(std::string_view(reinterpret_cast<const char*>(c.read_buffer_.data()), have));
                consume_front(c.read_buffer_, have, r.consumed);
            }
            if (parser.status() == RequestParser::Status::error) {
                log(LogLevel::debug, "connection {}: bad request: {}", c.id(), parser.error_reason());
                Response res(parser.error_status(), std::string(parser.error_reason()) + "\n");
                res.set_header("Connection", "close");
                co_await write_response(c, res, false);
                co_return std::nullopt;
            }
            Request& req = parser.request();
            if (is_upgrade_request(req)) {
                if (co_await handshake(c, req)) {
                    leftover = have;
                    co_return std::move(req);
                }
                co_return std::nullopt;
            }
            Response res;
            const bool keep_alive = req.keep_alive() && on_request_ && !stopping_;
            if (on_request_) {
                const bool ok = co_await call_handler(c, "request", [&] { return on_request_(c, req, res); });
                if (!ok) res = Response(500, "internal error\n");
            } else {
                res = Response(400, "this endpoint speaks WebSocket only\n");
            }
            if (!keep_alive) res.set_header("Connection", "close");
            if (!co_await write_response(c, res, keep_alive) || !keep_alive) co_return std::nullopt;
            parser.reset();
            if (settings_.handshake_timeout.count() > 0)
                c.deadline_ = Connection::clock::now() + settings_.handshake_timeout;
        }
    }

    /// Runs the handshake hook (or the RFC default) and writes its response; true when upgraded.
    asio::awaitable<bool> handshake(Connection& c, const Request& req) {
        c.status_.store(ConnectionStatus::handshake, std::memory_order_release);
        Response res;
        bool accepted = false;
        if (on_handshake_) {
            const bool ok = co_await call_handler(c, "handshake", [&]() -> asio::awaitable<void> {
                accepted = co_await on_handshake_(c, req, res);
            });
            if (!ok) {
                accepted = false;
                res = Response(500, "internal error\n");
            } else if (accepted && res.status != 101) {
                log(LogLevel::error, "connection {}: handshake hook accepted without a 101 response; "
                                     "call swirl::accept_handshake(req, res)", c.id());
                accepted = false;
                res = Response(500, "internal error\n");
            }
        } else {
            accepted = accept_handshake(req, res, settings_.subprotocols);
        }
        if (!accepted) {
            if (res.status == 101 || res.status < 200) res = Response(400);
            res.set_header("Connection", "close");
            log(LogLevel::debug, "connection {}: handshake rejected with {}", c.id(), res.status);
            co_await write_response(c, res, false);
            co_return false;
        }
        if (const auto protocol = res.header("Sec-WebSocket-Protocol")) c.subprotocol_ = std::string(*protocol);
        co_return co_await write_response(c, res, true);
    }

    /// Writes a whole HTTP response; without `keep_open`, then half-closes and lingers so it is not lost to a reset.
    /// A malformed response from a hook is replaced by a 500 that closes the connection (false).
    asio::awaitable<bool> write_response(Connection& c, const Response& res, bool keep_open) {
        if (const auto why = res.malformed()) {
            log(LogLevel::error, "connection {}: a hook's response was not sent: {}", c.id(), *why);
            Response internal_error(500, "internal error\n");
            internal_error.set_header("Connection", "close");
            co_await write_response(c, internal_error, false);
            co_return false;
        }
        const std::string bytes = res.serialize();
        std::error_code ec;
        const std::size_t n = co_await asio::async_write(c.socket_, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
        c.bytes_out_.fetch_add(n, std::memory_order_relaxed);
        if (ec) co_return false;
        if (!keep_open) co_await linger(c);
        co_return true;
    }

    /// Half-closes and discards input until the peer closes too (bounded by `close_timeout`).
    asio::awaitable<void> linger(Connection& c) {
        std::error_code ec;
        c.socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
        c.arm_close_timeout();
        c.status_.store(ConnectionStatus::closing, std::memory_order_release);
        if (c.read_buffer_.empty()) c.read_buffer_.resize(detail::connection_read_size);
        while (!ec) {
            const std::size_t n = co_await c.socket_.async_read_some(asio::buffer(c.read_buffer_), asio::redirect_error(asio::use_awaitable, ec));
            c.bytes_in_.fetch_add(n, std::memory_order_relaxed);
        }
    }

    /// Marks an event loop's bulk buffer busy while a connection still reads from it.
    class BulkLease {
    public:
        BulkLease() = default;
        BulkLease(const BulkLease&) = delete;
        BulkLease& operator=(const BulkLease&) = delete;
        ~BulkLease() { release(); }
        void take(detail::LoopBuffers& b) noexcept {
            held_ = &b;
            b.busy = true;
        }
        void release() noexcept {
            if (held_) held_->busy = false;
            held_ = nullptr;
        }

    private:
        detail::LoopBuffers* held_ = nullptr;
    };

    asio::awaitable<void> websocket_phase(Connection& c, Request& req, std::size_t have) {
        c.reader_.emplace(Role::server, ReaderLimits{settings_.max_frame_size, settings_.max_message_size});
        {
            std::lock_guard lock(c.mutex_);
            c.status_.store(ConnectionStatus::active, std::memory_order_release);
        }
        c.opened_ = true;
        c.quiet_window_ = quiet_window();
        c.deadline_ = c.quiet_window_ != Connection::clock::duration::zero() ? Connection::clock::now() + c.quiet_window_
                                                                             : Connection::clock::time_point::max();
        c.watchdog_.cancel();
        if (stopping_) c.close(close_code::going_away, "server shutting down");  // upgraded while stop() ran
        if (on_open_) co_await call_handler(c, "open", [&] { return on_open_(c, req); });
        req = Request{};  // nothing keeps the upgrade request alive past open

        MessageReader& reader = *c.reader_;
        std::span<const std::uint8_t> input(c.read_buffer_.data(), have);
        bool upgrade_leftover = true;  // `input` starts with what followed the upgrade request in its read
        BulkLease lease;               // holds the bulk buffer while `input` points into it
        // The yield posts through the loop's own executor: ~260 fewer instructions a read than the type-erased one.
        const asio::any_io_executor socket_executor = c.socket_.get_executor();
        const auto* loop_executor = socket_executor.target<asio::io_context::executor_type>();
        while (true) {
            if (on_message_plain_) c.begin_batch();
            while (!input.empty()) {
                c.refill_message_buffer();
                const ReadResult r = reader.read(input);
                input = input.subspan(r.consumed);
                if (r.event == ReadEvent::need_more) break;
                if (r.event == ReadEvent::error) {
                    lease.release();
                    log(LogLevel::debug, "connection {}: protocol error {}: {}", c.id(), reader.error_code(), reader.error_reason());
                    c.close_from_reader(reader.error_code(), reader.error_reason(), true);
                    co_await c.wait_drained();
                    co_await linger(c);
                    co_return;
                }
                if (r.event == ReadEvent::close) {
                    lease.release();
                    co_await on_close_frame(c, reader.frame());
                    co_return;
                }
                c.more_input_ = !input.empty();  // replies to the rest of this read will follow: coalesce them
                if (take_frame(c, r.event, reader.frame())) {
                    if (on_message_plain_) {
                        call_plain(c, "message", [&] { on_message_plain_(c, reader.frame()); });
                    } else {
                        try {  // call_handler, written out: one coroutine frame less per message
                            asio::awaitable<void> handling = on_message_(c, reader.frame());
                            co_await std::move(handling);
                        } catch (...) {
                            handler_threw(c, "message");
                        }
                    }
                }
            }
            lease.release();
            if (std::exchange(upgrade_leftover, false)) std::vector<std::uint8_t>().swap(c.read_buffer_);
            // Replies leave before the next read; letting the other ready connections run first gives the peer time
            // to answer, so that read usually finds its next message instead of coming back empty.
            c.end_batch();
            c.lend_message_buffer();
            if (settings_.pause_reading_above != 0 && c.unsent() > settings_.pause_reading_above) co_await c.wait_drained();
            if (loop_executor) co_await asio::post(*loop_executor, asio::use_awaitable);
            else co_await asio::post(socket_executor, asio::use_awaitable);
            std::error_code ec;
            std::size_t n = 0;
            while (true) {
                n = read_available(c, input, lease, ec);
                if (ec != asio::error::would_block && ec != asio::error::try_again) break;
                c.release_idle_buffers(detail::idle_message_capacity);
                co_await c.socket_.async_wait(asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, ec));
                if (ec) break;
            }
            if (ec) {
                std::lock_guard lock(c.mutex_);
                c.settle_close_info_locked({close_code::abnormal, ec.message(), false, false});
                co_return;
            }
            c.note_activity(n);
        }
    }

    /// Reads what the socket holds without waiting: into the event loop's bulk buffer (leased to `input`), or into
    /// the connection's own while a suspended handler elsewhere holds the bulk buffer.
    static std::size_t read_available(Connection& c, std::span<const std::uint8_t>& input, BulkLease& lease,
                                      std::error_code& ec) {
        detail::LoopBuffers& bulk = *c.bulk_;
        const bool shared = !bulk.busy;
        if (!shared && c.read_buffer_.empty()) c.read_buffer_.resize(detail::connection_read_size);
        std::vector<std::uint8_t>& bytes = shared ? bulk.bytes : c.read_buffer_;
        const std::size_t n = c.socket_.read_some(asio::buffer(bytes), ec);
        if (ec) return 0;
        if (shared) lease.take(bulk);
        input = std::span<const std::uint8_t>(bytes.data(), n);
        return n;
    }

    /// Answers a ping; true when the message handler is to hear of the message, ping or pong.
    bool take_frame(Connection& c, ReadEvent event, const Frame& frame) {
        if (c.status() != ConnectionStatus::active) return false;  // closing: the app no longer hears from the peer
        if (event == ReadEvent::ping) {
            if (settings_.auto_pong) c.answer_ping(frame.payload);
            return settings_.deliver_ping && has_message_handler();
        }
        if (event == ReadEvent::pong) return settings_.deliver_pong && has_message_handler();
        return event == ReadEvent::message && has_message_handler();
    }

    bool has_message_handler() const noexcept { return on_message_ || on_message_plain_; }

    /// The peer sent a close frame: answer it (unless we already sent ours), flush, then close TCP first.
    asio::awaitable<void> on_close_frame(Connection& c, Frame& frame) {
        if (settings_.deliver_close && c.status() == ConnectionStatus::active) {
            if (on_message_plain_) call_plain(c, "message", [&] { on_message_plain_(c, frame); });
            else if (on_message_) co_await call_handler(c, "message", [&] { return on_message_(c, frame); });
        }
        c.close_from_reader(frame.code, frame.reason, false);
        co_await c.wait_drained();
        {
            std::lock_guard lock(c.mutex_);
            c.close_info_.clean = !c.write_failed_;  // both close frames crossed
        }
        std::error_code ec;
        c.socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    }

    /// Runs a user handler; an exception is logged and closes the connection with 1011. False when it threw.
    template <class Call>
    asio::awaitable<bool> call_handler(Connection& c, std::string_view event, Call&& call) {
        try {
            co_await call();
            co_return true;
        } catch (...) {
            handler_threw(c, event);
        }
        co_return false;
    }

    /// `call_handler` for a plain (non-coroutine) handler.
    template <class Call>
    void call_plain(Connection& c, std::string_view event, Call&& call) {
        try {
            call();
        } catch (...) {
            handler_threw(c, event);
        }
    }

    /// In a catch block: logs the exception and closes the connection with 1011.
    void handler_threw(Connection& c, std::string_view event) {
        try {
            throw;
        } catch (const std::exception& e) {
            log(LogLevel::error, "connection {}: {} handler threw: {}", c.id(), event, e.what());
        } catch (...) {
            log(LogLevel::error, "connection {}: {} handler threw a non-exception", c.id(), event);
        }
        c.close(close_code::internal_error, "internal error");
    }

    /// Enforces the handshake, idle and close timeouts of one connection by waiting for its deadline. A callback, not a coroutine: an idle connection keeps only this
    /// small handler.
    void arm_watchdog(std::shared_ptr<Connection> c) {
        auto& timer = c->watchdog_;
        timer.expires_at(c->deadline_);
        timer.async_wait([this, c = std::move(c)](std::error_code) mutable { on_watchdog(std::move(c)); });
    }

    void on_watchdog(std::shared_ptr<Connection> c) {
        if (c->finished_) return;
        if (Connection::clock::now() < c->deadline_) return arm_watchdog(std::move(c));  // moved or re-armed
        switch (c->status()) {
        case ConnectionStatus::connection:
        case ConnectionStatus::handshake:
            log(LogLevel::debug, "connection {}: handshake timeout", c->id());
            break;
        case ConnectionStatus::active: {
            const auto now = Connection::clock::now();
            const auto silence = now - c->last_heard();
            if (settings_.idle_timeout.count() > 0 && silence >= settings_.idle_timeout) {
                log(LogLevel::debug, "connection {}: idle timeout", c->id());
                c->close(close_code::going_away, "idle timeout");  // re-arms the deadline for the close
                c->deadline_ = Connection::clock::time_point::max();
                return arm_watchdog(std::move(c));
            }
            if (c->awaiting_pong_) {  // pinged, and nothing came back within pong_timeout
                log(LogLevel::debug, "connection {}: no pong within {} ms", c->id(), settings_.pong_timeout.count());
                std::lock_guard lock(c->mutex_);
                c->settle_close_info_locked({close_code::abnormal, "pong timeout", true, false});
                break;
            }
            c->deadline_ = c->last_heard() + c->quiet_window_;
            if (settings_.ping_interval.count() > 0 && silence >= settings_.ping_interval) {
                c->ping();
                c->awaiting_pong_ = settings_.pong_timeout.count() > 0;
                c->deadline_ = now + (c->awaiting_pong_ ? settings_.pong_timeout : settings_.ping_interval);
                if (settings_.idle_timeout.count() > 0) c->deadline_ = std::min(c->deadline_, c->last_heard() + settings_.idle_timeout);
            }
            return arm_watchdog(std::move(c));
        }
        case ConnectionStatus::closing:
        case ConnectionStatus::closed:
            log(LogLevel::debug, "connection {}: close timeout", c->id());
            break;
        }
        std::error_code ec;
        c->socket_.close(ec);
    }

    /// How long an open connection may stay silent before the watchdog acts: the shorter of the enabled heartbeat
    /// interval and idle timeout (zero: neither is enabled).
    std::chrono::steady_clock::duration quiet_window() const noexcept {
        std::chrono::steady_clock::duration window{};
        for (const auto limit : {settings_.ping_interval, settings_.idle_timeout})
            if (limit.count() > 0 && (window == window.zero() || limit < window)) window = limit;
        return window;
    }

    void cancel_all_timers() {
        std::lock_guard lock(timers_mutex_);
        for (auto& [id, t] : timers_) {
            t->cancelled = true;
            asio::post(*contexts_.front(), [t = t] { t->timer.cancel(); });
        }
        timers_.clear();
    }

    asio::awaitable<void> shutdown() {
        std::error_code ec;
        acceptor_->close(ec);
        cancel_all_timers();
        // Open connections get a close frame; those still in their HTTP phase are dropped; those already closing
        // finish their own close handshake (bounded by close_timeout).
        for (const auto& c : snapshot())
            if (!c->close(close_code::going_away, "server shutting down") && c->status() != ConnectionStatus::closing)
                c->abort();
        const auto deadline = std::chrono::steady_clock::now() + settings_.close_timeout + std::chrono::milliseconds(500);
        asio::steady_timer poll(*contexts_.front());
        while (connection_count() != 0 && std::chrono::steady_clock::now() < deadline) {
            poll.expires_after(std::chrono::milliseconds(10));
            co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        for (const auto& c : snapshot()) c->abort();
        cancel_all_timers();  // again: handlers that ran meanwhile may have added some before stop()
        for (auto& g : guards_) g.reset();
        if (connection_count() != 0)
            for (auto& ctx : contexts_) ctx->stop();
    }

    static void consume_front(std::vector<std::uint8_t>& buf, std::size_t& have, std::size_t n) {
        if (n != 0 && n < have) std::memmove(buf.data(), buf.data() + n, have - n);
        have -= n;
    }

    Settings settings_;
    std::vector<std::unique_ptr<detail::LoopBuffers>> bulk_;  // outlives the contexts and their coroutines
    std::vector<std::unique_ptr<asio::io_context>> contexts_;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
    std::optional<asio::ip::tcp::acceptor> acceptor_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stopping_{false};
    bool listening_ = false;
    std::size_t connection_limit_ = 0;  // set by listen()

    HandshakeHandler on_handshake_;
    OpenHandler on_open_;
    MessageHandler on_message_;
    PlainMessageHandler on_message_plain_;
    CloseHandler on_close_;
    RequestHandler on_request_;

    mutable std::mutex registry_mutex_;
    std::unordered_map<ConnectionId, std::shared_ptr<Connection>> connections_;
    std::atomic<ConnectionId> next_connection_id_{1};

    std::mutex timers_mutex_;
    std::unordered_map<TimerId, std::shared_ptr<TimerState>> timers_;
    std::atomic<TimerId> next_timer_id_{1};
};

template <class UserData>
const Settings& Connection<UserData>::settings() const noexcept {
    return server_.settings();
}

} // namespace swirl
