#pragma once
/// The WebSocket server: Swoole's events (handshake, open, message, close, request) as coroutines, and its
/// methods (push, broadcast, publish, disconnect, exist, client_info, stats, offload, timers, stop) safe to call
/// from any thread.
///
/// Each event loop (`Settings::threads`) owns a shard of the connection registry, the topic subscriptions of its
/// connections and its counters (server/detail/event_loop.hpp): a call about one connection locks that
/// connection's shard only, and a publish is delivered by each loop to its own connections.

#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/http_response.hpp>
#include <swirl/server/any_transport.hpp>
#include <swirl/server/connection.hpp>
#include <swirl/server/detail/descriptor_limit.hpp>
#include <swirl/server/detail/event_loop.hpp>
#include <swirl/server/detail/log.hpp>
#include <swirl/server/detail/owned_descriptor.hpp>
#include <swirl/server/handlers.hpp>
#include <swirl/server/offload.hpp>
#include <swirl/server/session.hpp>
#include <swirl/server/settings.hpp>
#include <swirl/server/stats.hpp>

#include <swirl/detail/asio.hpp>

#include <csignal>
#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace swirl {

using TimerId = std::uint64_t;

/// `UserData` is default-constructed per connection and reachable as `connection.data()`.
template <class UserData = std::monostate>
class Server {
public:
    using Connection = swirl::Connection<UserData>;
    using HandshakeHandler = typename detail::Handlers<UserData>::HandshakeHandler;
    using OpenHandler = typename detail::Handlers<UserData>::OpenHandler;
    using MessageHandler = typename detail::Handlers<UserData>::MessageHandler;
    using PlainMessageHandler = typename detail::Handlers<UserData>::PlainMessageHandler;
    using CloseHandler = typename detail::Handlers<UserData>::CloseHandler;
    using RequestHandler = typename detail::Handlers<UserData>::RequestHandler;
    using DrainHandler = typename detail::Handlers<UserData>::DrainHandler;

    explicit Server(Settings settings = {})
        : settings_(std::move(settings)), tasks_(settings_.task_threads, settings_.task_queue_size) {
        if (settings_.threads == 0) settings_.threads = 1;
        for (unsigned i = 0; i < settings_.threads; ++i)
            loops_.push_back(std::make_unique<detail::EventLoop<UserData>>(i, settings_.threads, read_size(settings_),
                                                                           deadline_tick(settings_),
                [this](Connection& c) { detail::Session<UserData>::on_deadline(session_host_, c); },
                settings_.socket_locks));
    }

    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Stops the server and joins its threads, then the offload workers: a task still running (one that outlasted
    /// `close_timeout` in `stop()`) is waited for here, so that its completion reaches a live event loop.
    ~Server() {
        stop();
        wait();
        tasks_.join();
    }

    /// Custom handshake: return true to accept (after filling `res` via `accept_handshake`), false to reject with
    /// whatever status, headers and body `res` holds. `on_open` still fires after an accepted custom handshake.
    ///
    /// Each handler is either a coroutine (returns `asio::awaitable`, and then must contain a `co_await` or a
    /// `co_return`: without one, a lambda declared `-> asio::awaitable<void>` is an ordinary function that returns
    /// nothing, which crashes) or a plain function returning what the coroutine would (`bool` here, `void` for the
    /// others): write a handler that never waits as a plain one.
    void on_handshake(HandshakeHandler h) {
        handlers_.handshake = std::move(h);
        handlers_.plain_handshake = nullptr;
    }
    /// A handshake handler that never waits (returns bool): called in place, without a coroutine frame.
    template <class F>
        requires std::same_as<std::invoke_result_t<F&, Connection&, const Request&, Response&>, bool>
    void on_handshake(F h) {
        handlers_.plain_handshake = std::move(h);
        handlers_.handshake = nullptr;
    }
    void on_open(OpenHandler h) {
        handlers_.open = std::move(h);
        handlers_.plain_open = nullptr;
    }
    /// An open handler that never waits (returns void).
    template <class F>
        requires std::is_void_v<std::invoke_result_t<F&, Connection&, const Request&>>
    void on_open(F h) {
        handlers_.plain_open = std::move(h);
        handlers_.open = nullptr;
    }
    void on_message(MessageHandler h) {
        handlers_.message = std::move(h);
        handlers_.plain_message = nullptr;
    }
    /// A message handler that never waits (returns void): called in place, without a coroutine frame per message.
    template <class F>
        requires std::is_void_v<std::invoke_result_t<F&, Connection&, Frame&>>
    void on_message(F h) {
        handlers_.plain_message = std::move(h);
        handlers_.message = nullptr;
    }
    void on_close(CloseHandler h) {
        handlers_.close = std::move(h);
        handlers_.plain_close = nullptr;
    }
    /// A close handler that never waits (returns void).
    template <class F>
        requires std::is_void_v<std::invoke_result_t<F&, Connection&, const CloseInfo&>>
    void on_close(F h) {
        handlers_.plain_close = std::move(h);
        handlers_.close = nullptr;
    }
    /// Called once on the first event loop when `stop()` begins (a call, or a signal: `Settings::stop_on_signals`),
    /// before connections are closed (Swoole's `onShutdown`). Cancel the application's own pending waits there
    /// (a signal set, a timer): `run()` returns once nothing is left to wait for.
    void on_stop(std::function<void()> f) { on_stop_ = std::move(f); }

    /// Plain HTTP requests on the same port. Without it, non-upgrade requests get 400.
    void on_request(RequestHandler h) { handlers_.request = std::move(h); }
    /// A request handler that never waits (returns void).
    template <class F>
        requires std::is_void_v<std::invoke_result_t<F&, Connection&, const Request&, Response&>>
    void on_request(F h) {
        handlers_.request = [h = std::move(h)](Connection& c, const Request& q, Response& r) mutable -> asio::awaitable<void> {
            h(c, q, r);
            co_return;
        };
    }
    /// Output drained (uWebSockets' `drain`): called on the connection's thread once its unsent output has fallen
    /// to `Settings::drain_below` bytes after the socket pushed back or a push was refused, so that a producer that
    /// checks `Connection::buffered()` knows when to send again. Plain (`void(Connection&)`) or a coroutine.
    template <class F>
        requires std::is_invocable_v<F&, Connection&>
    void on_drain(F h) {
        if constexpr (std::is_void_v<std::invoke_result_t<F&, Connection&>>) {
            handlers_.drain = std::move(h);
        } else {
            static_assert(std::is_same_v<std::invoke_result_t<F&, Connection&>, asio::awaitable<void>>,
                          "a drain handler returns void or asio::awaitable<void>");
            handlers_.drain = [this, h = std::move(h)](Connection& c) {
                asio::co_spawn(c.executor(), [h, self = c.shared_from_this()]() mutable -> asio::awaitable<void> {
                    co_await h(*self);
                }, [this, self = c.shared_from_this()](std::exception_ptr failure) {
                    if (failure) drain_threw(*self, failure);
                });
            };
        }
    }

    /// Handler-class style: registers each of `on_handshake`, `on_open`, `on_message`, `on_close`, `on_request`,
    /// `on_drain` that `handler` has. `handler` must outlive the server.
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
        if constexpr (requires(Connection& c) { handler.on_drain(c); })
            on_drain([&handler](Connection& c) { return handler.on_drain(c); });
    }

    const Settings& settings() const noexcept { return settings_; }

    /// Swoole's static `WebSocket\Server::pack` / `unpack` (see `swirl::pack`, `swirl::unpack`).
    static std::string pack(std::string_view data, Opcode opcode = Opcode::text, bool fin = true) {
        return swirl::pack(data, opcode, fin);
    }
    static std::optional<Frame> unpack(std::string_view bytes) { return swirl::unpack(bytes); }

    /// Binds the listener `Settings` names, and starts accepting on it and on every listener added before; throws
    /// `std::system_error` on failure, and `std::logic_error` when no message handler was registered (messages
    /// would vanish). Called by `start`/`run` when needed.
    void listen() {
        std::lock_guard lock(listeners_mutex_);
        if (listening_) return;
        if (!handlers_.has_message())
            throw std::logic_error("swirl::Server::listen: no message handler; register one with on_message() first");
        listeners_.push_front(bind({settings_.host, settings_.port, settings_.backlog, settings_.reuse_port, settings_.tls}));
        catch_signals();  // after the bind: a listen() that fails leaves the signals alone
        listening_ = true;
        fit_connection_limit();
        for (auto& listener : listeners_) start_accepting(listener);
    }

    /// Another address to accept connections on, served like the first (Swoole's `addListener`): bound at once,
    /// accepting from `listen()` on (at once, when the server already listens). Returns the bound address. Throws
    /// `std::system_error` when it cannot bind, `std::logic_error` once `stop()` was called. Any thread.
    asio::ip::tcp::endpoint add_listener(const ListenOptions& options) {
        std::lock_guard lock(listeners_mutex_);
        if (stopping_) throw std::logic_error("add_listener after stop()");
        Listener& listener = listeners_.emplace_back(bind(options));
        if (listening_) start_accepting(listener);
        return listener.acceptor->local_endpoint();
    }

    /// Re-reads every TLS listener's certificate, key and CA files (after a renewal, say): connections accepted
    /// from now on use them, open ones keep theirs. Throws, naming the file, when one cannot be loaded; that
    /// listener then keeps its certificate. Any thread.
    void reload_tls() {
        std::vector<std::shared_ptr<TlsContext>> contexts;
        {
            std::lock_guard lock(listeners_mutex_);
            for (const auto& l : listeners_)
                if (l.tls && std::find(contexts.begin(), contexts.end(), l.tls) == contexts.end()) contexts.push_back(l.tls);
        }
#if SWIRL_TLS
        for (const auto& tls : contexts) tls->reload();
#endif
    }

    /// TLS handshakes that failed (plain HTTP or garbage on a TLS port, a protocol version or certificate refused,
    /// a peer that stalled past `handshake_timeout`); each is also logged at debug.
    std::uint64_t tls_handshake_failures() const noexcept {
        return tls_handshake_failures_.load(std::memory_order_relaxed);
    }

    /// How many connections the server admits before answering 503: `max_connections`, or fewer when the open-file
    /// limit cannot be raised far enough (see `listen()`).
    std::size_t connection_limit() const noexcept { return connection_limit_; }

    /// The bound address of the listener `Settings` names (with `port = 0`, where the kernel put it); after `listen()`.
    asio::ip::tcp::endpoint local_endpoint() const {
        std::lock_guard lock(listeners_mutex_);
        if (!listening_) throw std::logic_error("local_endpoint before listen()");
        return listeners_.front().acceptor->local_endpoint();
    }

    /// Every listener's bound address: the one `Settings` names first (once listening), then those added.
    std::vector<asio::ip::tcp::endpoint> local_endpoints() const {
        std::lock_guard lock(listeners_mutex_);
        std::vector<asio::ip::tcp::endpoint> all;
        for (const auto& l : listeners_) all.push_back(l.acceptor->local_endpoint());
        return all;
    }

    /// Whether the listener at `local_endpoints()[i]` speaks TLS (wss).
    bool is_tls_listener(std::size_t i) const {
        std::lock_guard lock(listeners_mutex_);
        return i < listeners_.size() && listeners_[i].tls != nullptr;
    }

    /// Runs the server on this thread plus `threads - 1` others until `stop()`.
    void run() {
        listen();
        for (std::size_t i = 1; i < loops_.size(); ++i) threads_.emplace_back([this, i] { loops_[i]->context.run(); });
        first_context().run();
        wait();
    }

    /// Runs the server on `threads` background threads and returns at once; see `wait()`.
    void start() {
        listen();
        for (std::size_t i = 0; i < loops_.size(); ++i) threads_.emplace_back([this, i] { loops_[i]->context.run(); });
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
        asio::co_spawn(first_context(), shutdown(), asio::detached);
    }

    bool stopping() const noexcept { return stopping_.load(); }

    /// Pushes one frame to connection `id`; the result says whether it was queued and why not. `compress`: as in
    /// `Connection::send` (permessage-deflate, when the connection agreed to it and the message reaches the threshold).
    PushResult push(ConnectionId id, std::string_view data, Opcode opcode = Opcode::text, bool fin = true, bool compress = true) {
        detail::EventLoop<UserData>& loop = loop_of(id);
        std::lock_guard lock(loop.registry_mutex);
        const auto c = loop.connections.find(id);
        if (!c) return {PushStatus::no_such_connection};
        return (*c)->send(data, opcode, fin, compress);
    }

    bool ping(ConnectionId id, std::string_view payload = {}) {
        return static_cast<bool>(push(id, payload, Opcode::ping));
    }

    /// Starts the close handshake with `id`; false when it is not an open WebSocket connection.
    bool disconnect(ConnectionId id, std::uint16_t code = close_code::normal, std::string_view reason = {}) {
        const auto c = find(id);
        return c && c->close(code, reason);
    }

    /// Swoole's `pause($fd)` / `resume($fd)`: `Connection::pause_reading` / `resume_reading` by id; false when
    /// there is no such connection.
    bool pause(ConnectionId id) {
        const auto c = find(id);
        if (c) c->pause_reading();
        return c != nullptr;
    }
    bool resume(ConnectionId id) {
        const auto c = find(id);
        if (c) c->resume_reading();
        return c != nullptr;
    }

    bool exist(ConnectionId id) const {
        const detail::EventLoop<UserData>& loop = loop_of(id);
        std::lock_guard lock(loop.registry_mutex);
        return loop.connections.contains(id);
    }

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
        const detail::EventLoop<UserData>& loop = loop_of(id);
        std::lock_guard lock(loop.registry_mutex);
        const auto c = loop.connections.find(id);
        return c ? *c : nullptr;
    }

    /// Ids of every current connection (any status).
    std::vector<ConnectionId> connections() const {
        std::vector<ConnectionId> ids;
        ids.reserve(connection_count());
        for (const auto& loop : loops_) {
            std::lock_guard lock(loop->registry_mutex);
            for (const auto& c : loop->connections) ids.push_back(c->id());
        }
        return ids;
    }

    std::size_t connection_count() const noexcept { return connection_count_.load(std::memory_order_relaxed); }

    /// Calls `f(connection)` for each current connection, outside any lock (f may push or disconnect).
    template <class F>
    void for_each_connection(F&& f) const {
        for (const auto& c : snapshot()) f(*c);
    }

    /// Sends one message to every established connection, encoding the frame once and sharing it (with
    /// permessage-deflate: compressed once per window size among the recipients, never once per recipient). Returns
    /// how many connections queued it. Only data frames and pings of at most 125 bytes are broadcast; anything else
    /// returns 0.
    std::size_t broadcast(std::string_view data, Opcode opcode = Opcode::text) {
        if (!publishable(data, opcode)) return 0;
        const auto message = detail::SharedMessage::make(data, opcode);
        std::size_t queued = 0;
        for (const auto& loop : loops_) {  // one shard at a time; its lock is not taken by any connection's own lock
            std::lock_guard lock(loop->registry_mutex);
            for (const auto& c : loop->connections)
                if (c->is_established() && c->send_shared(message)) ++queued;
        }
        return queued;
    }

    /// Sends one message to every subscriber of `topic` (see `Connection::subscribe`), from any thread or
    /// coroutine: the frame is encoded once and shared by every recipient, never copied per recipient.
    /// Subscribers on the calling thread's event loop get it queued before this returns (`queued` counts those that
    /// took it; backpressure refuses it per recipient as for `push`). Each other event loop with subscribers is
    /// handed the frame and queues it to its own connections (`forwarded` counts them), in publish order per
    /// publishing thread. O(subscribers of `topic`), whatever the number of other topics and connections.
    /// Only data frames and pings of at most 125 bytes are published; anything else returns {}.
    PublishResult publish(std::string_view topic, std::string_view data, Opcode opcode = Opcode::text) {
        return publish_except(topic, data, opcode, nullptr);
    }

    /// How many connections follow `topic`.
    std::size_t subscribers(std::string_view topic) const {
        std::size_t n = 0;
        for (const auto& loop : loops_) {
            std::lock_guard lock(loop->topics_mutex);
            n += loop->topics.subscribers(topic);
        }
        return n;
    }

    /// Every topic with at least one subscriber, sorted; only those starting with `prefix` when one is given
    /// (`topics("room:")` leaves out the `user:…` topics of every connection, say).
    std::vector<std::string> topics(std::string_view prefix = {}) const {
        std::vector<std::string> names;
        for (const auto& loop : loops_) {
            std::lock_guard lock(loop->topics_mutex);
            loop->topics.for_each_topic([&](std::string_view name, std::size_t) {
                if (name.starts_with(prefix)) names.emplace_back(name);
            });
        }
        std::sort(names.begin(), names.end());
        names.erase(std::unique(names.begin(), names.end()), names.end());
        return names;
    }

    /// Counters and gauges per event loop and in total (Swoole's `stats()`); render them with `to_prometheus`.
    /// Walks the registry to count connections by status: O(connections), meant for a monitoring scrape.
    Stats stats() const {
        Stats stats;
        std::vector<std::string> names;
        for (const auto& loop : loops_) {
            LoopStats& l = stats.loops.emplace_back();
            loop->counters.read_into(l);
            {
                std::lock_guard lock(loop->registry_mutex);
                for (const auto& c : loop->connections) {
                    switch (c->status()) {
                    case ConnectionStatus::connection: ++l.connecting; break;
                    case ConnectionStatus::handshake: ++l.handshaking; break;
                    case ConnectionStatus::active: ++l.open; break;
                    case ConnectionStatus::closing: ++l.closing; break;
                    case ConnectionStatus::closed: break;
                    }
                }
            }
            std::lock_guard lock(loop->topics_mutex);
            l.topics = loop->topics.topic_count();
            l.subscriptions = loop->topics.subscription_count();
            if (loops_.size() > 1)
                loop->topics.for_each_topic([&](std::string_view name, std::size_t) { names.emplace_back(name); });
            stats.total += l;
        }
        std::sort(names.begin(), names.end());
        stats.topics = loops_.size() > 1 ? static_cast<std::size_t>(std::unique(names.begin(), names.end()) - names.begin())
                                         : stats.total.topics;
        stats.tasks = tasks_.stats();
        return stats;
    }

    /// Runs `f()` on the offload pool (`Settings::task_threads` workers, started on first use) and resumes the
    /// awaiting coroutine on its own event loop with `f`'s result, or rethrows what `f` threw. For blocking calls
    /// (a database, a file, a DNS lookup) and heavy computation, which would stall every connection of the event
    /// loop if run in a handler. Throws `OffloadError` at once when `Settings::task_queue_size` tasks already wait
    /// (`std::errc::resource_unavailable_try_again`), and when the server stops before `f` started
    /// (`std::errc::operation_canceled`). `f` must not refer to the connection after it could have closed: capture
    /// what it needs by value.
    template <class F>
    asio::awaitable<std::invoke_result_t<F&>> offload(F f) {
        using R = std::invoke_result_t<F&>;
        using Result = std::conditional_t<std::is_void_v<R>, std::monostate, std::optional<R>>;
        tasks_.reserve();
        Result result = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, Result)>(
            [this](auto handler, F f) { tasks_.template submit<Result>(std::move(f), std::move(handler)); },
            asio::use_awaitable, std::move(f));
        if constexpr (!std::is_void_v<R>) co_return std::move(*result);
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
        asio::post(first_context(), [t] { t->timer.cancel(); });
        return true;
    }

    /// Runs `f` on the first event loop soon, after the current handler yields.
    template <class F>
    void defer(F f) {
        asio::co_spawn(first_context(), [f = std::move(f)]() mutable -> asio::awaitable<void> {
            co_await detail::invoke_maybe_async(f);
        }, asio::detached);
    }

    /// The first event loop, for user tasks (`co_spawn(server.context(), ...)`). I/O objects of your own on it are
    /// used from its thread (see `Settings::socket_locks`).
    asio::io_context& context() noexcept { return first_context(); }

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
        std::vector<std::shared_ptr<Connection>> all;
        all.reserve(connection_count());
        for (const auto& loop : loops_) {
            std::lock_guard lock(loop->registry_mutex);
            for (const auto& c : loop->connections) all.push_back(c);
        }
        return all;
    }

    asio::io_context& first_context() noexcept { return loops_.front()->context; }

    /// The resolution of the connections' deadlines: a sixteenth of the shortest enabled timeout, within
    /// [1 ms, 1 s]; a deadline fires at most that much late, and each event loop wakes at most once per tick.
    /// The bytes one read takes (`Settings::read_size`, within `pause_reading_above` when set; 16 KiB or more).
    static std::size_t read_size(const Settings& s) noexcept {
        constexpr std::size_t least = 16u << 10;
        const std::size_t size = s.pause_reading_above != 0 ? std::min(s.read_size, s.pause_reading_above) : s.read_size;
        return std::max(size, least);
    }

    static std::chrono::steady_clock::duration deadline_tick(const Settings& s) {
        std::chrono::milliseconds shortest = std::chrono::seconds(16);
        for (const auto t : {s.handshake_timeout, s.idle_timeout, s.ping_interval, s.pong_timeout, s.close_timeout})
            if (t.count() > 0) shortest = std::min(shortest, t);
        return std::clamp<std::chrono::steady_clock::duration>(shortest / 16, std::chrono::milliseconds(1),
                                                                std::chrono::seconds(1));
    }

    /// The event loop connection `id` lives on (see `EventLoop::next_id`).
    detail::EventLoop<UserData>& loop_of(ConnectionId id) const noexcept { return *loops_[id % loops_.size()]; }

    static bool publishable(std::string_view data, Opcode opcode) noexcept {
        return opcode != Opcode::close && opcode != Opcode::pong && !(opcode == Opcode::ping && data.size() > 125);
    }

    /// `publish`, leaving out `sender` (a connection publishing to its own topic, as uWebSockets).
    PublishResult publish_except(std::string_view topic, std::string_view data, Opcode opcode, const Connection* sender) {
        PublishResult result;
        if (!publishable(data, opcode)) return result;
        std::shared_ptr<detail::SharedMessage> frame;  // framed once; compressed once per window, when first needed
        for (const auto& loop : loops_) {
            if (loop->running_in_this_thread()) {  // no lock: only this thread changes this loop's topics
                if (loop->topics.subscribers(topic) == 0) continue;
                if (!frame) frame = detail::SharedMessage::make(data, opcode);
                result.queued += deliver(*loop, topic, frame, sender ? sender->id() : 0);
                continue;
            }
            std::size_t n = 0;
            {
                std::lock_guard lock(loop->topics_mutex);
                n = loop->topics.subscribers(topic);
                if (sender && loop->topics.is_subscribed(*sender, topic)) --n;
            }
            if (n == 0 && loop->pending_changes.load(std::memory_order_relaxed) == 0) continue;
            if (!frame) frame = detail::SharedMessage::make(data, opcode);
            result.forwarded += n;
            asio::post(loop->context, [&loop = *loop, frame, topic = std::string(topic), except = sender ? sender->id() : 0] {
                deliver(loop, topic, frame, except);
            });
        }
        return result;
    }

    /// On `loop`'s thread: queues `frame` to each of its subscribers of `topic` but connection `except` (0: none);
    /// returns how many took it.
    static std::size_t deliver(detail::EventLoop<UserData>& loop, std::string_view topic,
                               const std::shared_ptr<detail::SharedMessage>& frame, ConnectionId except) {
        std::size_t queued = 0;
        loop.topics.for_each_subscriber(topic, [&](Connection& c) {
            if (c.id() != except && c.send_shared(frame)) ++queued;
        });
        return queued;
    }

    template <class F>
    TimerId add_timer(std::chrono::milliseconds interval, bool repeat, F f) {
        const TimerId id = next_timer_id_.fetch_add(1);
        auto state = std::make_shared<TimerState>(first_context());
        {
            std::lock_guard lock(timers_mutex_);
            if (stopping_) return 0;  // checked under the lock that shutdown() sweeps timers with
            timers_.emplace(id, state);
        }
        asio::co_spawn(first_context(), run_timer(id, std::move(state), interval, repeat, std::move(f)), asio::detached);
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
            } catch (...) {
                log(LogLevel::error, "timer {} threw: {}", id, detail::describe_exception(std::current_exception()));
            }
            next += interval;
        } while (repeat && !state->cancelled);
        std::lock_guard lock(timers_mutex_);
        timers_.erase(id);
    }

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

    struct Listener {
        std::unique_ptr<asio::ip::tcp::acceptor> acceptor;  // non-blocking, on the first event loop
        std::shared_ptr<TlsContext> tls;  // null: plain TCP
        // The first event loop's thread only:
        std::unique_ptr<asio::steady_timer> pause;  // the wait after `accept` failed for want of resources
        Throttle accept_failed;
    };

    /// A bound, listening acceptor on the first event loop.
    Listener bind(const ListenOptions& options) {
#if !SWIRL_TLS
        if (options.tls) throw std::logic_error("a TLS listener needs swirl built with TLS (SWIRL_TLS, OpenSSL 3)");
#endif
        asio::ip::tcp::resolver resolver(first_context());
        const auto endpoint = resolver.resolve(options.host, std::to_string(options.port),
                                               asio::ip::tcp::resolver::passive).begin()->endpoint();
        auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(first_context());
        acceptor->open(endpoint.protocol());
        acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true));
        if (options.reuse_port) {
            const int on = 1;
            if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
                throw std::system_error(errno, std::system_category(), "SO_REUSEPORT");
        }
        acceptor->bind(endpoint);
        acceptor->listen(options.backlog);
        acceptor->non_blocking(true);  // `accept` answers EAGAIN once no connection waits
        Listener listener;
        listener.acceptor = std::move(acceptor);
        listener.tls = options.tls;
        return listener;
    }

    /// Starts accepting on `listener`, on the first event loop.
    void start_accepting(Listener& listener) {
        asio::post(first_context(), [this, &listener] { accept_ready(listener, {}); });
    }

    /// Connections accepted in one go before other work of the first event loop gets a turn.
    static constexpr int accept_batch = 64;

    /// The first event loop's thread: accepts every connection waiting on `listener` (at most `accept_batch`, then
    /// goes on after whatever else is due), dealing them out to the event loops in turn, and then waits for the
    /// next. No coroutine and no Asio accept operation: a non-blocking, close-on-exec `accept4`, and an edge wait
    /// on the listening socket (`detail::async_wait_acceptable`). At the connection limit, a connection is answered
    /// 503; when the process is out of descriptors or memory, accepting pauses 50 ms instead of spinning.
    void accept_ready(Listener& listener, std::error_code ec) {
        if (stopping_ || ec == asio::error::operation_aborted || !listener.acceptor->is_open()) return;
        for (int accepted = 0; accepted < accept_batch; ++accepted) {
            sockaddr_storage address{};
            socklen_t length = sizeof address;
            const int fd = accept_socket(listener.acceptor->native_handle(), address, length);
            if (fd < 0) {
                const int error = errno;
                if (error == EAGAIN || error == EWOULDBLOCK)
                    return detail::async_wait_acceptable(*listener.acceptor, [this, &listener](std::error_code e) {
                        accept_ready(listener, e);
                    });
                // Failures of the connection rather than of the listener (Linux reports some network errors of
                // the new socket here): that connection is gone, the next may be fine.
                if (error == EINTR || error == ECONNABORTED || error == EPROTO || error == EPERM ||
                    error == ENETDOWN || error == ENOPROTOOPT || error == EHOSTDOWN || error == ENONET ||
                    error == EHOSTUNREACH || error == EOPNOTSUPP || error == ENETUNREACH)
                    continue;
                if (std::size_t held = 0; listener.accept_failed.allow(held))
                    log(LogLevel::warning, "accept failed: {}{}", std::system_category().message(error),
                        Throttle::note(held));
                if (!listener.pause) listener.pause = std::make_unique<asio::steady_timer>(first_context());
                listener.pause->expires_after(std::chrono::milliseconds(50));
                listener.pause->async_wait([this, &listener](std::error_code) { accept_ready(listener, {}); });
                return;
            }
            asio::ip::tcp::endpoint peer;  // from accept itself: no getpeername
            if (length <= peer.capacity()) {
                std::memcpy(peer.data(), &address, length);
                peer.resize(length);
            }
            hand_over(fd, peer, listener.tls);
        }
        asio::post(first_context(), [this, &listener] { accept_ready(listener, {}); });
    }

    /// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC` where there is one, else `accept` and `fcntl`.
    static int accept_socket(int listening, sockaddr_storage& address, socklen_t& length) noexcept {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
        return ::accept4(listening, reinterpret_cast<sockaddr*>(&address), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        const int fd = ::accept(listening, reinterpret_cast<sockaddr*>(&address), &length);
        if (fd >= 0) {
            ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        return fd;
#endif
    }

    /// The first event loop's thread: gives the descriptor `accept` returned to the next event loop in turn, to be
    /// registered there, by that loop's own thread: each loop's per-socket reactor state is only ever touched by the
    /// thread that runs the loop, which lets the loops run without Asio's per-socket locks. A slot under
    /// the connection limit is taken here, where every connection is counted in the order it arrived; past the
    /// limit, the connection is answered 503 on its loop.
    void hand_over(int fd, const asio::ip::tcp::endpoint& peer, const std::shared_ptr<TlsContext>& tls) {
        detail::EventLoop<UserData>& loop = *loops_[next_loop_];
        next_loop_ = (next_loop_ + 1) % loops_.size();
        const bool busy = connection_count() >= connection_limit_;
        if (busy) {
            if (std::size_t held = 0; limit_reached_.allow(held))
                log(LogLevel::warning, "connection limit {} reached, answering 503{}", connection_limit_,
                    Throttle::note(held));
            loops_.front()->counters.refused_at_limit.add();
        } else {
            connection_count_.fetch_add(1, std::memory_order_relaxed);
        }
        if (&loop == loops_.front().get()) return adopt(loop, detail::OwnedDescriptor(fd), peer, tls, busy);
        asio::post(loop.context, [this, &loop, fd = detail::OwnedDescriptor(fd), peer, tls, busy]() mutable {
            adopt(loop, std::move(fd), peer, tls, busy);
        });
    }

    /// `loop`'s thread: a socket for the accepted descriptor, registered with this loop's reactor, and then its
    /// session (or its 503, when `busy`).
    void adopt(detail::EventLoop<UserData>& loop, detail::OwnedDescriptor fd, const asio::ip::tcp::endpoint& peer,
               const std::shared_ptr<TlsContext>& tls, bool busy) {
        std::error_code ec;
        LoopSocket socket(loop.context);
        if (!busy && stopping_) ec = asio::error::operation_aborted;
        else socket.assign(peer.protocol(), fd.get(), ec);  // one epoll_ctl
        if (ec) {
            if (!busy) connection_count_.fetch_sub(1, std::memory_order_relaxed);
            if (ec != asio::error::operation_aborted) log(LogLevel::error, "accepted socket: {}", ec.message());
            return;  // `fd` closes it
        }
        fd.release();
        detail::adopt_accepted(socket);
        if (busy) {
            asio::co_spawn(loop.context, reject_busy(asio::ip::tcp::socket(std::move(socket))), asio::detached);
            return;
        }
        start_session(loop, std::move(socket), peer, tls);
    }

    /// `loop`'s thread: registers a connection (whose slot under the limit is taken) for a socket accepted from
    /// `peer` and starts its session, over TLS when `tls` is set. A connection that cannot be set up (out of
    /// memory, say) gives its slot back; the others go on.
    void start_session(detail::EventLoop<UserData>& loop, LoopSocket socket, const asio::ip::tcp::endpoint& peer,
                       const std::shared_ptr<TlsContext>& tls) {
        const auto spawn = [&]<class T>(T transport) {
            std::shared_ptr<Connection> c;
            try {
                c = std::make_shared<Connection>(*this, loop.next_id(), std::move(transport), peer, loop);
                std::lock_guard lock(loop.registry_mutex);
                loop.connections.insert(c);
            } catch (const std::exception& e) {
                connection_count_.fetch_sub(1, std::memory_order_relaxed);
                log(LogLevel::error, "connection setup failed: {}", e.what());
                return;
            }
            loop.counters.accepted.add();
            detail::Session<UserData>::template start<T>(session_host_, std::move(c));
        };
#if SWIRL_TLS
        if (tls) {
            std::optional<TlsTransport> transport;
            try {
                transport.emplace(asio::ip::tcp::socket(std::move(socket)), *tls);
            } catch (const std::exception& e) {  // out of memory in OpenSSL, say: this connection only
                connection_count_.fetch_sub(1, std::memory_order_relaxed);
                log(LogLevel::error, "TLS setup failed: {}", e.what());
                return;
            }
            return spawn(std::move(*transport));
        }
#else
        (void)tls;
#endif
        spawn(TcpTransport(std::move(socket)));
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

    void cancel_all_timers() {
        std::lock_guard lock(timers_mutex_);
        for (auto& [id, t] : timers_) {
            t->cancelled = true;
            asio::post(first_context(), [t = t] { t->timer.cancel(); });
        }
        timers_.clear();
    }

    /// A drain handler threw: logged, and its connection closed with 1011 (as for the session's handlers).
    void drain_threw(Connection& c, std::exception_ptr failure) {
        log(LogLevel::error, "connection {}: drain handler threw: {}", c.id(), detail::describe_exception(failure));
        c.close(close_code::internal_error, "internal error");
    }

    /// `Settings::stop_on_signals`: from `listen()` on, SIGINT and SIGTERM stop the server. The signal set stays
    /// until the server is destroyed, so that later signals are caught (and ignored) while the shutdown runs.
    void catch_signals() {
        if (!settings_.stop_on_signals || signals_) return;
        signals_.emplace(first_context(), SIGINT, SIGTERM);
        signals_->async_wait([this](std::error_code ec, int signal) {
            if (ec) return;
            log(LogLevel::info, "signal {}: stopping gracefully", signal);
            stop();
        });
    }

    asio::awaitable<void> shutdown() {
        std::error_code ec;
        if (signals_) signals_->cancel(ec);  // its wait would keep the first loop running
        if (on_stop_) {
            try {
                on_stop_();
            } catch (...) {
                log(LogLevel::error, "stop handler threw: {}", detail::describe_exception(std::current_exception()));
            }
        }
        {
            std::lock_guard lock(listeners_mutex_);
            for (auto& l : listeners_) l.acceptor->close(ec);
        }
        cancel_all_timers();
        tasks_.stop();  // queued tasks are cancelled; running ones finish (bounded below)
        // Open connections get a close frame; those still in their HTTP phase are dropped; those already closing
        // finish their own close handshake (bounded by close_timeout).
        for (const auto& c : snapshot())
            if (!c->close(close_code::going_away, "server shutting down") && c->status() != ConnectionStatus::closing)
                c->abort();
        const auto deadline = std::chrono::steady_clock::now() + settings_.close_timeout + std::chrono::milliseconds(500);
        asio::steady_timer poll(first_context());
        while (connection_count() != 0 && std::chrono::steady_clock::now() < deadline) {
            poll.expires_after(std::chrono::milliseconds(10));
            co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        for (const auto& c : snapshot()) c->abort();
        cancel_all_timers();  // again: handlers that ran meanwhile may have added some before stop()
        const bool tasks_done = tasks_.wait_idle(deadline);  // a task's completion keeps its loop running
        for (auto& loop : loops_) {
            asio::post(loop->context, [&l = *loop] { l.release_timer(); });
            loop->guard.reset();
        }
        if (connection_count() != 0 || !tasks_done)
            for (auto& loop : loops_) loop->context.stop();
    }

    Settings settings_;
    detail::TaskPool tasks_;  // before the loops: its workers are joined after the loops are gone
    std::vector<std::unique_ptr<detail::EventLoop<UserData>>> loops_;
    std::optional<asio::signal_set> signals_;  // after the loops: destroyed before them
    std::function<void()> on_stop_;
    mutable std::mutex listeners_mutex_;
    std::deque<Listener> listeners_;  // the one `Settings` names first, once listening; accept loops hold references
    std::size_t next_loop_ = 0;  // the event loop the next accepted connection goes to (first loop only)
    Throttle limit_reached_;     // the first loop only
    std::vector<std::thread> threads_;
    std::atomic<bool> stopping_{false};
    bool listening_ = false;
    std::size_t connection_limit_ = 0;  // set by listen()

    detail::Handlers<UserData> handlers_;
    std::atomic<std::uint64_t> tls_handshake_failures_{0};
    detail::SessionHost<UserData> session_host_{settings_, handlers_, stopping_, [this](Connection& c) {
        c.leave_topics();
        detail::EventLoop<UserData>& loop = loop_of(c.id());
        {
            std::lock_guard lock(loop.registry_mutex);
            loop.connections.erase(c.id());
        }
        connection_count_.fetch_sub(1, std::memory_order_relaxed);
    }, tls_handshake_failures_};
    std::atomic<std::size_t> connection_count_{0};  // in the registry

    std::mutex timers_mutex_;
    std::unordered_map<TimerId, std::shared_ptr<TimerState>> timers_;
    std::atomic<TimerId> next_timer_id_{1};
};

template <class UserData>
const Settings& Connection<UserData>::settings() const noexcept {
    return server_.settings();
}

template <class UserData>
void Connection<UserData>::post_drain() {
    if (!server_.handlers_.drain) return;
    asio::post(executor(), [self = this->shared_from_this()] {
        if (self->status() != ConnectionStatus::active) return;
        try {
            self->server_.handlers_.drain(*self);
        } catch (...) {
            self->server_.drain_threw(*self, std::current_exception());
        }
    });
}

template <class UserData>
PublishResult Connection<UserData>::publish(std::string_view topic, std::string_view data, Opcode opcode) {
    return server_.publish_except(topic, data, opcode, this);
}

} // namespace swirl
