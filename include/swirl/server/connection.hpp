#pragma once
/// One client connection: identity, user data, statistics and the thread-safe write path.
/// Everything public here may be called from any thread; the transport itself is only touched on the connection's
/// own event-loop thread. The session (server/session.hpp) drives the connection through the private interface
/// marked "Session interface" below, and touches none of its fields.

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/message_reader.hpp>
#include <swirl/server/any_transport.hpp>
#include <swirl/server/detail/compression.hpp>
#include <swirl/server/detail/event_loop.hpp>
#include <swirl/server/detail/loop_buffers.hpp>
#include <swirl/server/detail/output_queue.hpp>
#include <swirl/server/detail/small_mutex.hpp>
#include <swirl/server/settings.hpp>
#include <swirl/server/stats.hpp>

#include <swirl/detail/asio.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace swirl {

namespace detail {
/// The connection whose plain message handler runs on this thread, if any (set around the call by the session,
/// inside the read's batch): a `send` to it from there is a reply, queued without asking which thread it is on and
/// without scheduling a flush, since the batch's end writes it (`Connection::queue_reply`).
inline thread_local const void* replying_to = nullptr;
}  // namespace detail

/// Connection ids are process-wide unique and never reused.
using ConnectionId = std::uint64_t;

/// Lifecycle of a connection, as Swoole's WEBSOCKET_STATUS_* constants.
enum class ConnectionStatus {
    connection,  ///< TCP accepted, reading the HTTP request
    handshake,   ///< upgrade request received, handshake hook running
    active,      ///< WebSocket open: messages flow
    closing,     ///< a close frame was sent or received
    closed,
};

constexpr std::string_view to_string(ConnectionStatus s) noexcept {
    switch (s) {
    case ConnectionStatus::connection: return "CONNECTION";
    case ConnectionStatus::handshake: return "HANDSHAKE";
    case ConnectionStatus::active: return "ACTIVE";
    case ConnectionStatus::closing: return "CLOSING";
    case ConnectionStatus::closed: return "CLOSED";
    }
    return "?";
}

enum class PushStatus {
    queued,
    no_such_connection,  ///< unknown or already removed id
    not_open,            ///< the connection is not (or no longer) ACTIVE
    buffer_full,         ///< unsent output is over `Settings::max_output_buffer`
    invalid_frame,       ///< a control frame that is fragmented or longer than 125 bytes
};

constexpr std::string_view to_string(PushStatus s) noexcept {
    switch (s) {
    case PushStatus::queued: return "queued";
    case PushStatus::no_such_connection: return "no such connection";
    case PushStatus::not_open: return "connection not open";
    case PushStatus::buffer_full: return "output buffer full";
    case PushStatus::invalid_frame: return "invalid frame";
    }
    return "?";
}

/// The outcome of a publish (`Server::publish`, `Connection::publish`).
struct PublishResult {
    std::size_t queued = 0;     ///< subscribers on the publishing thread's event loop that queued the frame
    std::size_t forwarded = 0;  ///< subscribers on other event loops, to which the frame was handed for delivery
                                ///< (there, refusals for backpressure show in `Stats::pushes_refused`)
    std::size_t total() const noexcept { return queued + forwarded; }
};

/// The outcome of a push: converts to true when the frame was queued for sending.
struct PushResult {
    PushStatus status;
    explicit operator bool() const noexcept { return status == PushStatus::queued; }
    friend bool operator==(PushResult a, PushResult b) noexcept { return a.status == b.status; }
    friend bool operator==(PushResult a, PushStatus b) noexcept { return a.status == b; }
};

/// A snapshot of a connection, as Swoole's `getClientInfo`.
struct ClientInfo {
    ConnectionId id = 0;
    ConnectionStatus status = ConnectionStatus::closed;
    asio::ip::tcp::endpoint remote;
    std::chrono::system_clock::time_point connect_time;
    std::chrono::system_clock::time_point last_activity;  ///< last bytes received
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::size_t buffered = 0;  ///< bytes queued but not yet written
};

/// What the TLS handshake established, for a connection accepted on a TLS listener (`Connection::tls()`).
struct TlsInfo {
    std::string server_name;   ///< SNI: the host name the client asked for (empty when it sent none)
    std::string peer_subject;  ///< the client certificate's subject, RFC 2253 form (empty without one)
    std::string alpn;          ///< the protocol agreed by ALPN ("http/1.1"), empty when none
    std::string version;       ///< "TLSv1.3", "TLSv1.2"
};

/// Why a WebSocket connection ended, handed to the close handler.
struct CloseInfo {
    std::uint16_t code = close_code::abnormal;  ///< sent by whoever closed first; 1006 when nobody did
    std::string reason;
    bool by_server = false;  ///< the server started the close (Swoole: reactorId < 0)
    bool clean = false;      ///< both close frames were exchanged
};

template <class UserData>
class Server;

namespace detail {
template <class UserData>
class Session;
}

template <class UserData>
class Connection : public std::enable_shared_from_this<Connection<UserData>> {
public:
    using clock = std::chrono::steady_clock;

    /// `loop` is the event loop the transport belongs to; it outlives the connection.
    /// `transport` is one of `AnyTransport`'s alternatives, made in place; `remote` is its peer's address.
    template <class T>
    Connection(Server<UserData>& server, ConnectionId id, T&& transport, const asio::ip::tcp::endpoint& remote,
               detail::EventLoop<UserData>& loop)
        : server_(server), id_(id), transport_(std::in_place_type<std::decay_t<T>>, std::forward<T>(transport)),
          loop_(&loop), remote_(remote), deadline_hook_(this) {
        connect_system_ = std::chrono::system_clock::now();
        connect_steady_ = clock::now();
        last_activity_.store(0, std::memory_order_relaxed);
    }

    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    /// Off the loop's deadlines (only scheduled still when the event loop is torn down with the session suspended).
    ~Connection() { loop_->deadlines.cancel(deadline_hook_); }

    ConnectionId id() const noexcept { return id_; }
    /// Application data of the type the server was instantiated with.
    UserData& data() noexcept { return data_; }
    const UserData& data() const noexcept { return data_; }
    ConnectionStatus status() const noexcept { return status_.load(std::memory_order_acquire); }
    bool is_established() const noexcept { return status() == ConnectionStatus::active; }
    const asio::ip::tcp::endpoint& remote_endpoint() const noexcept { return remote_; }
    /// The permessage-deflate parameters agreed in the handshake (RFC 7692); null when the connection is uncompressed.
    const DeflateParams* deflate() const noexcept {
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        if (deflate_) return &deflate_->params();
#endif
        return nullptr;
    }
    /// The subprotocol agreed in the handshake, empty when none.
    const std::string& subprotocol() const noexcept { return agreed_ ? agreed_->subprotocol : no_subprotocol(); }
    /// For a connection on a TLS listener (wss), what its TLS handshake established (SNI, client certificate);
    /// null on plain TCP. Set before the HTTP request is read, so the handshake hook can use it.
    const TlsInfo* tls() const noexcept { return agreed_ && agreed_->tls ? &*agreed_->tls : nullptr; }
    Server<UserData>& server() noexcept { return server_; }
    /// The server's settings (the limits and subprotocols a custom handshake hook may want to consult).
    const Settings& settings() const noexcept;

    /// Bytes queued for this connection and not yet written (uWebSockets' `getBufferedAmount`). Any thread.
    std::size_t buffered() const { return unsent(); }

    /// Stops reading from the peer (Swoole's `pause`): once called on the connection's own thread (in a handler),
    /// no further message reaches the handler until `resume_reading()`; from another thread, within the current
    /// read. What the peer sends meanwhile, its close frame included, waits in TCP, which holds the peer's sends
    /// back once the windows fill. While paused, pongs are not awaited and the idle timeout does not apply (the peer
    /// cannot be heard), but heartbeat pings still go out, so a peer that vanished is found by a failing write; a
    /// close from the server (`close`, `disconnect`, `stop`) resumes reading to complete the close handshake.
    /// Any thread; a connection not yet open pauses once it opens.
    void pause_reading() noexcept { paused_.store(true, std::memory_order_release); }
    /// Reads again after `pause_reading()` (Swoole's `resume`); the heartbeat and idle clocks start afresh.
    /// Any thread.
    void resume_reading() {
        if (!paused_.exchange(false, std::memory_order_acq_rel)) return;
        asio::post(executor(), [self = this->shared_from_this()] {
            if (self->status() == ConnectionStatus::active) self->note_activity(0);
            self->wake_session();
        });
    }
    bool reading_paused() const noexcept { return paused_.load(std::memory_order_acquire); }

    ClientInfo info() const {
        ClientInfo info;
        info.id = id_;
        info.status = status();
        info.remote = remote_;
        info.connect_time = connect_system_;
        info.last_activity = connect_system_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                                   clock::duration(last_activity_.load(std::memory_order_relaxed)));
        info.bytes_in = bytes_in_.get();
        info.bytes_out = bytes_out_.get();
        info.buffered = unsent();
        return info;
    }

    /// Queues one frame. Writes are coalesced: frames queued while handling one read leave in one write. A large
    /// frame sent on the connection's own thread, with nothing queued and no more input to answer in this read, is
    /// written at once, without a copy. With permessage-deflate agreed, a whole text or binary message (`fin`, not a
    /// continuation) of at least `CompressOptions::threshold` bytes is sent compressed, unless `compress` is false.
    PushResult send(std::string_view payload, Opcode opcode = Opcode::text, bool fin = true, bool compress = true) {
        if (detail::replying_to == this && payload.size() < write_through_size && fin &&
            (opcode == Opcode::binary || opcode == Opcode::text) && !deflate_ && queue_reply(opcode, payload))
            return {PushStatus::queued};
        return send_general(payload, opcode, fin, compress);
    }

private:
#if defined(__GNUC__)
    __attribute__((noinline))
#endif
    PushResult send_general(std::string_view payload, Opcode opcode, bool fin, bool compress) {
        if (is_control(opcode) && (!fin || payload.size() > 125)) return {PushStatus::invalid_frame};
        if (opcode == Opcode::close) return close(close_code::normal) ? PushResult{PushStatus::queued} : PushResult{PushStatus::not_open};
        if (compresses(opcode, fin, payload.size(), compress))
            return counted(enqueue([&](detail::OutputQueue& q) { append_compressed(q, opcode, payload); }), opcode);
        if (payload.size() >= write_through_size && on_own_thread() && !more_input_ && write_through(opcode, fin, payload))
            return counted({PushStatus::queued}, opcode);
        return counted(enqueue([&](detail::OutputQueue& q) { q.append_frame(opcode, fin, payload); }), opcode);
    }

public:
    /// `send` for a payload the caller gives up: a large one is queued without a copy, e.g.
    /// `connection.send(std::move(frame.payload), frame.opcode)` to echo. Once written, its buffer receives a later
    /// message on the same event loop.
    template <class Payload>
        requires std::same_as<Payload, std::string>
    PushResult send(Payload&& payload, Opcode opcode = Opcode::text, bool fin = true, bool compress = true) {
        if (payload.size() < write_through_size || is_control(opcode) || compresses(opcode, fin, payload.size(), compress))
            return send(std::string_view(payload), opcode, fin, compress);
        if (on_own_thread() && !more_input_ && write_through(opcode, fin, payload, &payload))
            return counted({PushStatus::queued}, opcode);
        return counted(enqueue([&](detail::OutputQueue& q) { q.append_owned(opcode, fin, std::move(payload)); }), opcode);
    }

    bool ping(std::string_view payload = {}) { return static_cast<bool>(send(payload, Opcode::ping)); }

    /// Follows `topic`: `Server::publish(topic, …)` reaches this connection until `unsubscribe(topic)` or until it
    /// closes (it leaves every topic after `on_close`). On the connection's own event loop (in its handlers, say) it
    /// takes effect at once and returns false when the connection already followed `topic`. From another thread it
    /// is handed to that loop, takes effect in order with the same thread's later publishes, and returns true.
    /// False once the connection is closed. O(1) amortised.
    bool subscribe(std::string_view topic) {
        return change_subscription(topic, [](auto& index, Connection& c, std::string_view t) { return index.subscribe(c, t); });
    }

    /// Stops following `topic`; as `subscribe`, at once on the connection's own event loop (false when it did not
    /// follow `topic`), handed to that loop from elsewhere.
    bool unsubscribe(std::string_view topic) {
        return change_subscription(topic, [](auto& index, Connection& c, std::string_view t) { return index.unsubscribe(c, t); });
    }

    bool is_subscribed(std::string_view topic) const {
        std::lock_guard lock(loop_->topics_mutex);
        return loop_->topics.is_subscribed(*this, topic);
    }

    /// The topics this connection follows, in no particular order.
    std::vector<std::string> topics() const {
        std::lock_guard lock(loop_->topics_mutex);
        return loop_->topics.topics_of(*this);
    }

    /// `Server::publish` to every subscriber of `topic` but this connection (whether or not it follows `topic`).
    PublishResult publish(std::string_view topic, std::string_view data, Opcode opcode = Opcode::text);

    /// Starts the close handshake: sends a close frame, then waits (bounded by `close_timeout`) for the peer's.
    /// Returns false when the connection is not ACTIVE.
    bool close(std::uint16_t code = close_code::normal, std::string_view reason = {}) {
        if (code != close_code::no_status && !close_code::is_valid(code)) code = close_code::internal_error;
        if (reason.size() > 123) {  // a control frame holds 125 bytes; cut on a UTF-8 character boundary
            std::size_t cut = 123;
            while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
            reason = reason.substr(0, cut);
        }
        detail::SmallLock lock(mutex_);
        if (status() != ConnectionStatus::active) return false;
        begin_close_locked(code, reason, true);
        lock.unlock();
        post_close_followup();
        return true;
    }

    /// Drops the TCP connection without a close handshake. From the call on, the message handler hears nothing more
    /// (not even the rest of a read already made) and sends are refused (`not_open`).
    void abort() {
        {
            std::lock_guard lock(mutex_);
            settle_close_info_locked({close_code::abnormal, "aborted by the server", true, false});
            if (status() == ConnectionStatus::active) set_status(ConnectionStatus::closing);
        }
        asio::post(executor(), [self = this->shared_from_this()] {
            self->close_transport();
            self->wake_session();  // a paused reader stops waiting, and finds the transport closed
        });
    }

private:
    friend class Server<UserData>;
    friend class detail::Session<UserData>;
    friend struct detail::EventLoop<UserData>;

    /// What the handshakes agreed on, when they agreed on anything: kept out of line, as most connections have none.
    struct Agreed {
        std::string subprotocol;
        std::optional<TlsInfo> tls;
    };

    // Session interface: how server/session.hpp drives the connection, on the connection's own thread. ---------

    /// The transport, as the type the session was compiled for.
    template <class T>
    T& transport() noexcept { return std::get<T>(transport_); }
    void close_transport() {
        std::error_code ignored;
        detail::visit_transport(transport_, [&](auto& t) { t.close(ignored); });
    }
    /// Lets go of a reader parked on the transport without calling it (`TcpTransport::drop_parked`): for the event
    /// loop's teardown, with the registry still holding the connection.
    void drop_parked() noexcept {
        detail::visit_transport(transport_, [](auto& t) {
            if constexpr (requires { t.drop_parked(); }) t.drop_parked();
        });
    }

    /// The connection's own small read buffer (the HTTP phase; reads while the loop's bulk buffer is lent out).
    std::vector<std::uint8_t>& own_read_buffer() noexcept { return read_buffer_; }
    void drop_own_read_buffer() noexcept { std::vector<std::uint8_t>().swap(read_buffer_); }
    /// The event loop's bulk read buffer and message buffer pool.
    detail::LoopBuffers& loop_buffers() noexcept { return loop_->buffers; }

    /// Conn thread: memory for the connection's readiness wait (one not parked on its socket: a new connection's
    /// for its request, or when the socket could not park) or the read loop's yield: a block of the event loop's
    /// pool, so that a connection that waits and wakes per message allocates nothing. (A parked reader needs none:
    /// server/detail/edge_socket.hpp.)
    void* allocate_wait(std::size_t n, std::size_t align) {
        static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= alignof(std::max_align_t));
        if (align > __STDCPP_DEFAULT_NEW_ALIGNMENT__) throw std::bad_alloc();  // no wait is over-aligned
        return loop_->buffers.waits.allocate(n);
    }
    void deallocate_wait(void* p, std::size_t n) noexcept { loop_->buffers.waits.deallocate(p, n); }

    void set_status(ConnectionStatus s) noexcept { status_.store(s, std::memory_order_release); }
    void set_subprotocol(std::string_view protocol) { agreed().subprotocol = protocol; }
    static const std::string& no_subprotocol() noexcept {
        static const std::string none;
        return none;
    }
    void set_tls(TlsInfo info) { agreed().tls = std::move(info); }
    /// Before the connection opens (conn thread), made by the first of the TLS handshake and a subprotocol.
    Agreed& agreed() {
        if (!agreed_) agreed_ = std::make_unique<Agreed>();
        return *agreed_;
    }
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
    /// The handshake agreed on permessage-deflate with `params` (before the connection opens).
    void enable_deflate(const DeflateParams& params, const CompressOptions& options) {
        deflate_ = std::make_unique<detail::ConnectionDeflate>(params, options);
    }
#endif
    /// The connection's permessage-deflate state; null without the extension.
    detail::ConnectionDeflate* deflate_state() noexcept { return deflate_.get(); }
    /// Conn thread (the only writer of these counters).
    void count_in(std::size_t n) noexcept {
        bytes_in_.add(n);
        loop_->counters.bytes_in.add(n);
    }
    void count_out(std::size_t n) noexcept {
        bytes_out_.add(n);
        loop_->counters.bytes_out.add(n);
    }
    /// The event loop's statistics counters.
    detail::LoopCounters& counters() noexcept { return loop_->counters; }
    /// Whether the message handler is to coalesce its replies: the read it came from holds more input.
    void set_more_input(bool more) noexcept { more_input_ = more; }

    /// The upgrade is done: the connection is ACTIVE (from now on `on_close` will run), reads messages (`reader()`),
    /// and is watched for `quiet_window` of silence (zero: never).
    void open(clock::duration quiet_window) {
        {
            std::lock_guard lock(mutex_);  // enqueue() tests the status under the lock
            set_status(ConnectionStatus::active);
        }
        opened_ = true;
        quiet_window_ = quiet_window;
        deadline_ = quiet_window != clock::duration::zero() ? clock::now() + quiet_window : clock::time_point::max();
        watch();
    }
    bool opened() const noexcept { return opened_; }

    /// The session ends: the watchdog stops, the transport closes, the status is CLOSED. Returns why it ended.
    CloseInfo finish() {
        finished_ = true;
        loop_->unwatch(deadline_hook_);
        close_transport();
        set_status(ConnectionStatus::closed);
        std::lock_guard lock(mutex_);
        return close_info_ ? *close_info_ : CloseInfo{};
    }
    bool finished() const noexcept { return finished_; }

    void settle_close_info(CloseInfo info) {
        std::lock_guard lock(mutex_);
        settle_close_info_locked(std::move(info));
    }
    /// Both close frames crossed (unless writing failed meanwhile).
    void mark_clean_close() {
        std::lock_guard lock(mutex_);
        if (!close_info_) close_info_ = std::make_unique<CloseInfo>();
        close_info_->clean = !write_failed_;
    }

    /// The watchdog: the connection's entry in its event loop's deadlines (a timing wheel), due at `deadline()`.
    /// `move_deadline` leaves the entry where it is (the session's watchdog re-schedules it when it comes early);
    /// `set_deadline` moves it when the new deadline is earlier; `watch` schedules it at `deadline()`.
    void watch() {
        if (deadline_ == clock::time_point::max()) loop_->unwatch(deadline_hook_);
        else loop_->watch(deadline_hook_, deadline_);
    }
    clock::time_point deadline() const noexcept { return deadline_; }
    void move_deadline(clock::time_point t) noexcept { deadline_ = t; }
    clock::duration quiet_window() const noexcept { return quiet_window_; }
    bool awaiting_pong() const noexcept { return heartbeat_ == Heartbeat::pinged; }
    void set_awaiting_pong(bool awaiting) noexcept { heartbeat_ = awaiting ? Heartbeat::pinged : Heartbeat::quiet; }

    // Hibernation. A connection whose message handler is a coroutine keeps its session coroutine while idle (waking
    // it from a park would make a coroutine per message). One that has been silent for a heartbeat interval gives it
    // up: the watchdog cancels the coroutine's wait for input, the coroutine ends, and the connection parks as one
    // with a plain handler does (pings and pongs are answered in place) until a message for the handler arrives.

    /// Conn thread: the session coroutine is (no longer) suspended in its wait for input.
    void set_awaiting_input(bool awaiting) noexcept { awaiting_input_ = awaiting; }
    /// Conn thread: asked to hibernate (or opened so, `start_hibernating`), and no message has reached the handler
    /// since.
    bool hibernating() const noexcept { return hibernating_; }
    void end_hibernation() noexcept { hibernating_ = hibernation_counted_ = false; }
    /// Conn thread: opened without a coroutine, the connection starts as a hibernating one (server/session.hpp); it
    /// gave up no coroutine, so that is not counted as a hibernation.
    void start_hibernating() noexcept { hibernating_ = hibernation_counted_ = true; }
    /// Conn thread, a session coroutine ending as the connection parks: true once per hibernation (asked for by
    /// the watchdog, ended by a message for the handler). A coroutine that a hibernating connection runs for
    /// anything else (reading paused, say) and that ends as it parks again is not another one.
    bool count_hibernation() noexcept {
        if (!hibernating_ || hibernation_counted_) return false;
        hibernation_counted_ = true;
        return true;
    }

    /// Conn thread (the watchdog): ends the wait of a session coroutine that waits for input, so that it ends and
    /// the connection parks. Not while a write waits for the peer's window: the cancel would end that wait too.
    /// True when the wait was cancelled.
    bool hibernate() {
        if (!awaiting_input_ || hibernating_) return false;
        {
            std::lock_guard lock(mutex_);
            if (writing_) return false;  // writes start on this thread only: none starts before the cancel
        }
        std::error_code ignored;
        detail::visit_transport(transport_, [&](auto& t) { t.cancel(ignored); });
        hibernating_ = true;  // counted once the coroutine ends (`Session::parks`)
        return true;
    }

    /// Conn thread: completes once reading may go on (see `pause_reading`): resumed, or the connection is closing.
    asio::awaitable<void> wait_resumed() {
        while (reading_held()) co_await wait_session_signal();
    }
    /// Reading waits: paused, and the connection is not ending (a close from either side resumes reading).
    bool reading_held() const { return reading_paused() && status() == ConnectionStatus::active && !ending(); }
    /// A reason to end was settled (an abort, a failed write, a timeout).
    bool ending() const {
        std::lock_guard lock(mutex_);
        return close_info_ != nullptr;
    }

    // ------------------------------------------------------------------------------------------------------------

    /// Any thread: the drain handler, if any, runs soon on the connection's thread (defined in server.hpp).
    void post_drain();

    /// A data frame queued counts as a message out. Inline: GCC 12 otherwise keeps its counting part a call on
    /// every reply.
    __attribute__((always_inline)) PushResult counted(PushResult r, Opcode opcode) noexcept {
        if (r && !is_control(opcode)) {
            // A reply from a handler, a publish on the loop: counted without a locked add.
            if (on_own_thread()) loop_->counters.messages_out_here.add();
            else loop_->counters.messages_out.add();
        }
        return r;
    }

    /// `send` of an uncompressed data frame under `write_through_size` from the plain message handler of this
    /// connection, on its thread while its read's batch is open (`detail::replying_to`): `enqueue` less the thread
    /// checks and the flush it would schedule (the batch's end writes), inline where the handler sends. False, with
    /// nothing done, when the general path must answer (the connection closing, its queue at its limit).
#if defined(__GNUC__)
    __attribute__((always_inline))
#endif
    bool queue_reply(Opcode opcode, std::string_view payload) {
        detail::SmallLock lock(mutex_);
        if (status() != ConnectionStatus::active || pending_.size() + in_flight_ >= settings().max_output_buffer) return false;
        // `borrow_output_buffer` tests this too, but as a call: tested here first, 6 instructions a reply fewer.
        if (pending_.capacity() == 0) [[unlikely]] borrow_output_buffer(pending_, true);
        pending_.append_short_frame(opcode, payload);
        const bool full_batch = batch_full_locked();
        lock.unlock();
        if (full_batch) [[unlikely]] flush();
        loop_->counters.messages_out_here.add();
        return true;
    }

    template <class Change>
    bool change_subscription(std::string_view topic, Change change) {
        if (!on_own_thread()) {
            if (status() == ConnectionStatus::closed) return false;
            loop_->pending_changes.fetch_add(1, std::memory_order_relaxed);
            asio::post(executor(), [self = this->shared_from_this(), t = std::string(topic), change] {
                self->change_subscription(t, change);
                self->loop_->pending_changes.fetch_sub(1, std::memory_order_relaxed);
            });
            return true;
        }
        if (finished_) return false;  // it has left (or is leaving) every topic for good
        std::lock_guard lock(loop_->topics_mutex);
        return change(loop_->topics, *this, topic);
    }

    /// Conn thread, the session over: leaves every topic.
    void leave_topics() {
        std::lock_guard lock(loop_->topics_mutex);
        loop_->topics.unsubscribe_all(*this);
    }

    /// Queues a message framed once for many connections (`Server::broadcast`, `publish`): its plain frame, or
    /// its compressed one for this connection's window (compressed once per window, whoever asks first). Copied
    /// when small, else held by reference.
    PushResult send_shared(const std::shared_ptr<detail::SharedMessage>& message) {
        return counted(enqueue([&](detail::OutputQueue& q) {
            bool compressed = false;
            const std::string& frame = detail::SharedMessage::frame_bytes(*message, deflate_.get(), compressed);
            if (frame.size() <= detail::OutputQueue::copy_shared_up_to) q.append_encoded(frame);
            else q.append_shared(std::shared_ptr<const std::string>(message, &frame));
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
            if (compressed) deflate_->took_shared_bytes();  // under the write lock: in step with the queue
#endif
        }), message->opcode());
    }

    /// Whether a message is sent compressed: the connection is open with the extension (the status is read first:
    /// `deflate_` is set before the connection opens, maybe while another thread pushes), and it is a whole data
    /// message the sender did not exempt, from the threshold up.
    bool compresses([[maybe_unused]] Opcode opcode, [[maybe_unused]] bool fin, [[maybe_unused]] std::size_t size,
                    [[maybe_unused]] bool compress) const noexcept {
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        return deflate_ && compress && fin && (opcode == Opcode::text || opcode == Opcode::binary) && is_established() &&
               deflate_->compresses(size);
#else
        return false;
#endif
    }

    /// Under the write lock (a dedicated compressor's context must follow the order of the queue): compresses
    /// `payload` into the thread's scratch buffer and queues it as one frame with RSV1.
    void append_compressed([[maybe_unused]] detail::OutputQueue& q, [[maybe_unused]] Opcode opcode,
                           [[maybe_unused]] std::string_view payload) {
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        detail::SharedCodecs& codecs = detail::SharedCodecs::this_thread();
        std::string& out = codecs.scratch();
        out.clear();
        deflate_->compress(payload, out);
        q.append_frame(opcode, true, out, rsv::rsv1);
        codecs.trim(1u << 20);  // a burst's large buffer is not kept
#endif
    }

    template <class Append>
    PushResult enqueue(Append&& append) {
        detail::SmallLock lock(mutex_);
        if (status() != ConnectionStatus::active) return {PushStatus::not_open};
        if (pending_.size() + in_flight_ >= settings().max_output_buffer) {
            if (settings().backpressure == BackpressurePolicy::close_connection) {
                begin_close_locked(close_code::policy_violation, "output buffer full", true);
                lock.unlock();
                post_close_followup();
            }
            loop_->counters.pushes_refused.add();
            drain_armed_.store(true, std::memory_order_relaxed);
            return {PushStatus::buffer_full};
        }
        borrow_output_buffer(pending_, false);
        append(pending_);
        const bool full_batch = batch_full_locked();
        const bool post = schedule_flush_locked();
        lock.unlock();
        if (full_batch && on_own_thread()) flush();  // keeps the queue's buffer within what it retains
        else if (post) post_flush();
        return {PushStatus::queued};
    }

    /// Conn thread: answers a ping, unless our close frame went first (nothing may follow it). The pong is queued
    /// in order, unless an earlier pong still waits in the queue: then it becomes the one pong owed, which a later
    /// ping replaces (RFC 6455 §5.5.3 lets only the most recent ping be answered). A peer that pings without
    /// reading thus makes the server hold at most three pongs (one written, one queued, one owed), never a queue.
    void answer_ping(std::string_view payload) {
        detail::SmallLock lock(mutex_);
        if (close_sent_) return;
        if (!pong_queued_) {
            borrow_output_buffer(pending_, true);
            pending_.append_frame(Opcode::pong, true, payload);
            pong_queued_ = true;
            pong_owed_ = false;  // an owed pong answered an older ping
        } else {
            if (!owed_pong_) owed_pong_ = std::make_unique<std::string>();
            owed_pong_->assign(payload.substr(0, 125));  // a control frame's payload: at most 125 bytes
            pong_owed_ = true;
        }
        const bool post = schedule_flush_locked();
        lock.unlock();
        if (post) post_flush();
    }

    /// Moves the owed pong, if any, to the end of `pending_`.
    void take_pong_locked() {
        if (!pong_owed_) return;
        pong_owed_ = false;
        pending_.append_frame(Opcode::pong, true, *owed_pong_);
    }

    bool has_output_locked() const noexcept { return pong_owed_ || !pending_.empty(); }

    void begin_close_locked(std::uint16_t code, std::string_view reason, bool by_server) {
        status_.store(ConnectionStatus::closing, std::memory_order_release);
        close_sent_ = true;
        settle_close_info_locked({code, std::string(reason), by_server, false});
        take_pong_locked();  // a pong owed goes before the close frame, which nothing may follow
        borrow_output_buffer(pending_, false);  // on the loop's thread: the pool's buffer, not an allocation
        pending_.append_frame(Opcode::close, true, close_payload(code, reason));
        schedule_flush_locked();
    }

    /// The first reason the connection started to end wins; later ones (the read failing after an abort, say)
    /// do not overwrite it.
    void settle_close_info_locked(CloseInfo info) {
        if (close_info_) return;
        close_info_ = std::make_unique<CloseInfo>(std::move(info));
    }

    /// Any thread, after `begin_close_locked`: on the connection's thread, send the close frame and bound the wait
    /// for the peer.
    void post_close_followup() {
        asio::post(executor(), [self = this->shared_from_this()] {
            self->flush();
            self->arm_close_timeout();
            self->wake_session();  // a paused reader resumes, to read the peer's close frame
        });
    }

    /// Conn thread: queues our close frame unless one was already sent (answering a peer's close, or failing the
    /// connection), and bounds the wait for the peer even if it has stopped reading. The caller writes it
    /// (`wait_drained` or `drain_now`).
    void close_from_reader(std::uint16_t code, std::string_view reason, bool by_server) {
        {
            std::lock_guard lock(mutex_);
            if (!close_sent_) begin_close_locked(code, reason, by_server);
        }
        flush_follows_.store(false, std::memory_order_relaxed);
        arm_close_timeout();
    }

    /// Conn thread: bounds how long a close may wait for the peer; `close_timeout = 0` waits indefinitely.
    void arm_close_timeout() {
        if (settings().close_timeout.count() > 0) set_deadline(clock::now() + settings().close_timeout);
    }

    /// Under `mutex_`: whether the queued frames are to be written now rather than at the batch's end, so that the
    /// queue stays within what its buffer retains (`coalesce_limit`, `coalesce_held`, `coalesce_bytes`).
    bool batch_full_locked() const noexcept {
        return !writing_ && (pending_.flat_size() >= coalesce_limit || pending_.held_count() >= coalesce_held ||
                             pending_.size() >= coalesce_bytes);
    }

    bool schedule_flush_locked() noexcept {
        if (writing_ || flush_posted_ || flush_follows_.load(std::memory_order_relaxed)) return false;
        flush_posted_ = true;
        return true;
    }

    /// Flushes soon, on the connection's thread. From that thread (a publish or broadcast reaching many connections
    /// of the loop, say), the connection joins the loop's list of connections to flush, and one posted call
    /// flushes the whole list: one handler for the loop instead of one per connection.
    void post_flush() {
        if (!on_own_thread()) return asio::post(executor(), [self = this->shared_from_this()] { self->flush(); });
        auto& list = loop_->to_flush;
        list.push_back(this->shared_from_this());
        if (list.size() == 1) asio::post(executor(), [&loop = *loop_] { flush_listed(loop); });
    }

    /// The loop's thread: flushes every connection listed by `post_flush` (and those listed meanwhile, by the
    /// next posted call).
    static void flush_listed(detail::EventLoop<UserData>& loop) {
        loop.flushing.swap(loop.to_flush);
        for (const auto& c : loop.flushing) c->flush();
        loop.flushing.clear();  // keeps the capacity: no allocation once the lists have grown
    }

    /// Conn thread, before handlers that cannot suspend: what they queue needs no posted flush, because
    /// `end_batch()` follows them without giving up the thread.
    void begin_batch() noexcept { flush_follows_.store(true, std::memory_order_relaxed); }

    /// Conn thread: writes what the batch's handlers (or other threads meanwhile) queued.
    void end_batch() {
        flush_follows_.store(false, std::memory_order_relaxed);
        flush();
    }

    /// Conn thread, before reading input: the connection's message reader (the loop's pool lends one to a connection
    /// that has none), given the pool's next buffer when that is larger than its own (none, after a handler moved
    /// the payload away or the buffer was lent) and no message is partly received. Valid until `lend_message_buffer`.
    MessageReader& reader() {
        if (!reader_) {
            reader_ = loop_->buffers.readers.take(ReaderLimits{settings().max_frame_size, settings().max_message_size});
            reader_->set_compression(deflate_ != nullptr);  // pooled readers serve connections with and without
        }
        detail::BufferPool& messages = loop_->buffers.messages;
        if (reader_->in_message() || messages.next_capacity() <= reader_->buffer_capacity()) return *reader_;
        std::string buffer = messages.take();
        reader_->adopt_buffer(buffer);
        messages.give(std::move(buffer));  // the reader's smaller one
        return *reader_;
    }

    /// Conn thread, all input handled: lends the message buffer to the pool, for whichever connection receives next,
    /// and the reader too when it is between frames and holds no large buffer (one the buffer pool had no room for
    /// stays with the connection, as before, bounded by `release_idle_buffers`).
    void lend_message_buffer() {
        if (!reader_) return;
        if (!reader_->in_message() && loop_->buffers.messages.accepts(reader_->buffer_capacity()))
            loop_->buffers.messages.give(reader_->take_buffer());
        if (reader_->at_rest() && reader_->buffer_capacity() < detail::BufferPool::min_capacity)
            loop_->buffers.readers.give(std::move(reader_));
    }

    /// Conn thread, waiting for input: frees what a burst left beyond `keep_capacity` bytes in a message buffer the
    /// pool had no room for; and, at the first wait after the peer answered a heartbeat ping, what the transport
    /// keeps for the next message (over TLS, the record buffers reading the answer made again).
    void release_idle_buffers(std::size_t keep_capacity) {
        if (heartbeat_ == Heartbeat::answered) [[unlikely]] return release_after_answer(keep_capacity);
        if (reader_) reader_->release_buffer(keep_capacity);
    }

    /// Payloads from this size up are worth a write of their own rather than a copy into the output queue.
    static constexpr std::size_t write_through_size = 8 * 1024;
    /// Replies coalesced on the connection's thread (while one read's messages are handled) are written once this
    /// many bytes are copied into the queue, so that its buffer stays within the capacity it keeps for reuse (no
    /// allocation per batch); ...
    static constexpr std::size_t coalesce_limit = 32 * 1024;
    /// ... or once this many payloads are held (given up by their senders, not copied), so that one gather write
    /// takes them all (Asio writes at most 64 pieces at once: two per held payload, its header and itself) ...
    static constexpr std::size_t coalesce_held = 24;
    /// ... or once this many bytes are queued in all, so that a read that brings many large messages (up to
    /// `Settings::read_size`, 512 KiB) has its replies written in a few writes of about this size rather than one at
    /// the end. Under BBR, Linux paces a socket's output by itself (without the `fq` qdisc): echoing 16 KiB messages
    /// 16 at a time on loopback, one 256 KiB write per read cost 5.4 µs of kernel time per message where writes of
    /// ~192 KiB cost 3.5 (165k → 248k messages per server CPU-second, 9 rounds), and writes of 64 and 128 KiB 4.2 and
    /// 3.9; with CUBIC the size made no difference (222k–228k). 192 KiB is the largest of those that measured well.
    static constexpr std::size_t coalesce_bytes = 192 * 1024;

    bool on_own_thread() const noexcept { return executor().running_in_this_thread(); }

    /// The connection's event loop, which its transport belongs to (kept as the loop pointer: an
    /// `asio::any_io_executor` member would be 56 bytes more per connection).
    asio::io_context::executor_type executor() const noexcept { return loop_->context.get_executor(); }

    /// Conn thread: when nothing is queued or being written, writes the frame straight from `payload` and queues
    /// only what the socket did not take: a copy, or `owner` itself (the string `payload` views) when given.
    /// False when the frame must be queued instead.
    bool write_through(Opcode opcode, bool fin, std::string_view payload, std::string* owner = nullptr) {
        detail::SmallLock lock(mutex_);
        if (status() != ConnectionStatus::active || writing_ || has_output_locked() || write_failed_) return false;
        std::uint8_t header[max_frame_header_size];
        const std::size_t header_size = encode_unmasked_header(header, opcode, fin, payload.size());
        in_flight_ = header_size + payload.size();
        writing_ = true;
        lock.unlock();
        const std::array<asio::const_buffer, 2> frame{asio::buffer(header, header_size), asio::buffer(payload)};
        std::error_code ec;
        const std::size_t written = write_now(frame, ec);
        if (ec || written == in_flight_) {
            on_written(ec, written);
            return true;
        }
        borrow_output_buffer(writing_queue_, true);
        if (owner) writing_queue_.append_owned(opcode, fin, std::move(*owner));
        else writing_queue_.append_frame(opcode, fin, payload);
        gather();
        write_rest(written);
        return true;
    }

    /// Under the write lock: an empty queue without a buffer borrows the loop's output buffer freed last, still in
    /// cache (it goes back to the pool once written, so that an idle connection holds no output buffer). Only on
    /// the connection's thread, which the pool belongs to: other threads' pushes allocate their own. A queue keeps a
    /// buffer of its own only when the pool was full as its last write ended (a broadcast to more connections than
    /// the pool holds buffers, say), and then keeps using it: no allocation per message either way.
    void borrow_output_buffer(detail::OutputQueue& q, bool known_on_own_thread) {
        if (!q.empty() || q.capacity() != 0) return;
        if (!known_on_own_thread && !on_own_thread()) return;
        q.adopt_buffer(loop_->buffers.output.take());
    }

    /// A write that never blocks: what the transport takes now.
    std::size_t write_now(std::span<const asio::const_buffer> buffers, std::error_code& ec) {
        return detail::visit_transport(transport_, [&](auto& t) { return t.write_some(buffers, ec); });
    }



    /// Conn thread: writes everything pending in one gather write, unless a write is running. What the socket
    /// takes at once is written right here; only a remainder waits for Asio.
    void flush() {
        detail::SmallLock lock(mutex_);
        flush_posted_ = false;
        if (writing_ || write_failed_) return;
        take_pong_locked();
        if (pending_.empty()) return;
        writing_queue_.swap(pending_);
        pong_queued_ = false;
        in_flight_ = writing_queue_.size();
        writing_ = true;
        lock.unlock();
        std::error_code ec;
        std::size_t written = 0;
        if (writing_queue_.held_count() == 0) {  // the usual case, copied frames only: one piece, no gather list
            const std::string_view bytes = writing_queue_.flat_bytes();
            const asio::const_buffer piece(bytes.data(), bytes.size());
            written = write_now(std::span(&piece, 1), ec);
            if (ec || written == in_flight_) return on_written(ec, written);
            gather();  // `write_rest` goes on from the gather list
        } else {
            gather();
            written = write_now(buffers_, ec);
            if (ec || written == in_flight_) return on_written(ec, written);
        }
        write_rest(written);
    }

    /// Points `buffers_` at the pieces of `writing_queue_`.
    void gather() {
        buffers_.clear();
        first_unwritten_ = written_before_ = 0;
        writing_queue_.for_each_piece([this](const char* p, std::size_t n) { buffers_.emplace_back(p, n); });
    }

    /// Conn thread, `buffers_` gathered from `writing_queue_` and their first `written` bytes written: waits until
    /// the peer's window opens, writes what fits, and so on until all is written (then `on_written`).
    void write_rest(std::size_t written) {
        drain_armed_.store(true, std::memory_order_relaxed);  // the socket pushed back: drain when the queue is low
        std::size_t skip = written - written_before_;
        written_before_ = written;
        while (skip != 0) {
            const std::size_t n = std::min(skip, buffers_[first_unwritten_].size());
            buffers_[first_unwritten_] += n;
            skip -= n;
            if (buffers_[first_unwritten_].size() == 0) ++first_unwritten_;
        }
        detail::visit_transport(transport_, [&](auto& t) {
            t.async_wait(asio::socket_base::wait_write, [self = this->shared_from_this()](std::error_code ec) {
                std::size_t written = self->written_before_;
                if (!ec) {
                    const auto rest = std::span<const asio::const_buffer>(self->buffers_).subspan(self->first_unwritten_);
                    written += self->write_now(rest, ec);
                    if (!ec && written != self->in_flight_) return self->write_rest(written);
                }
                self->on_written(ec, written);
            });
        });
    }

    void on_written(std::error_code ec, std::size_t n) {
        count_out(n);
        // The written queue's buffer goes back to the loop's pool (the next frames queued on the loop take it), so
        // that an idle connection holds no output buffer; one the pool has no room for is kept up to 64 KiB.
        detail::LoopBuffers& pools = loop_->buffers;
        writing_queue_.clear(std::numeric_limits<std::size_t>::max(), &pools.messages);
        if (pools.output.accepts(writing_queue_.capacity())) pools.output.give(writing_queue_.take_buffer());
        else writing_queue_.clear();
        detail::SmallLock lock(mutex_);
        writing_ = false;
        in_flight_ = 0;
        if (ec) {
            write_failed_ = true;
            settle_close_info_locked({close_code::abnormal, "write failed: " + ec.message(), false, false});
            pending_.clear();
            pong_owed_ = pong_queued_ = false;
            lock.unlock();
            close_transport();
            wake_session();
            return;
        }
        const bool more = has_output_locked();
        const std::size_t left = pending_.size() + (pong_owed_ ? owed_pong_->size() : 0);
        const bool drain = left <= settings().drain_below && status() == ConnectionStatus::active &&
                           drain_armed_.load(std::memory_order_relaxed) &&  // the locked exchange only when armed
                           drain_armed_.exchange(false, std::memory_order_relaxed);
        lock.unlock();
        if (more) {
            flush();
        } else {
            wake_session();
            if (heartbeat_ == Heartbeat::pinged) [[unlikely]]
                release_write_buffers();
        }
        if (drain) post_drain();
    }

    /// Conn thread, all written, the last of it a heartbeat ping to a peer silent for `ping_interval`: the
    /// connection is idle, so it gives back what its writes keep for the next message (a queue's own buffer, the
    /// gather list, the list of payloads taken over; over TLS, OpenSSL's record buffers too), as an idle connection
    /// that was never pinged holds none of it. Once per heartbeat, not per message.
    __attribute__((noinline)) void release_write_buffers() {
        bool idle = false;
        {
            std::lock_guard lock(mutex_);  // other threads may have queued meanwhile (writes start on this thread only)
            if (pending_.empty() && !pong_owed_) {
                pending_ = detail::OutputQueue();
                idle = true;
            }
        }
        writing_queue_ = detail::OutputQueue();
        std::vector<asio::const_buffer>().swap(buffers_);
        if (idle) release_transport_buffers();
    }

    /// `release_idle_buffers`, the peer having answered a heartbeat ping (out of line: once per heartbeat).
    __attribute__((noinline)) void release_after_answer(std::size_t keep_capacity) {
        heartbeat_ = Heartbeat::quiet;
        if (reader_) reader_->release_buffer(keep_capacity);
        release_transport_buffers();
    }

    /// Conn thread, the connection idle: the transport's buffers kept for the next message go (TlsTransport's
    /// `release_buffers`; plain TCP keeps none).
    void release_transport_buffers() noexcept {
        detail::visit_transport(transport_, [](auto& t) {
            if constexpr (requires { t.release_buffers(); }) t.release_buffers();
        });
    }

    /// Wakes the session's `wait_drained` or `wait_resumed`, if it ever waited (each re-checks its condition).
    void wake_session() {
        if (session_signal_) session_signal_->cancel();
    }

    /// Conn thread: waits until `wake_session` (made on the first wait: most connections never wait, and a timer
    /// is 120 bytes per connection).
    asio::awaitable<void> wait_session_signal() {
        if (!session_signal_) session_signal_ = std::make_unique<asio::steady_timer>(executor(), clock::time_point::max());
        std::error_code ec;
        co_await session_signal_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    /// Bytes queued or being written (a pending pong counts by its payload).
    std::size_t unsent() const {
        std::lock_guard lock(mutex_);
        return pending_.size() + in_flight_ + (pong_owed_ ? owed_pong_->size() : 0);
    }

    bool drained() const {
        std::lock_guard lock(mutex_);
        return write_failed_ || (!writing_ && !has_output_locked());
    }

    /// Conn thread: completes once everything queued so far is written (or writing failed).
    asio::awaitable<void> wait_drained() {
        while (!drain_now()) co_await wait_session_signal();
    }

    /// Conn thread: writes what is queued as far as the transport takes it now; true when all is written (or writing
    /// failed), as `wait_drained` would complete.
    bool drain_now() {
        if (drained()) return true;
        flush();
        return drained();
    }

    /// Conn thread: moves the watchdog's deadline; an earlier one wakes the watchdog to re-arm.
    void set_deadline(clock::time_point t) {
        const bool earlier = t < deadline_;
        deadline_ = t;
        if (earlier) watch();
    }

    /// Conn thread: `n` bytes arrived. On an open connection this answers a heartbeat ping (any bytes do) and moves
    /// the watchdog's deadline to the end of the next quiet window.
    void note_activity(std::size_t n) {
        count_in(n);
        const auto now = clock::now();
        last_activity_.store((now - connect_steady_).count(), std::memory_order_relaxed);
        if (quiet_window_ != clock::duration::zero() && status() == ConnectionStatus::active) {
            deadline_ = now + quiet_window_;  // later than the one filed: the watchdog re-files it when that comes
            if (heartbeat_ == Heartbeat::pinged) [[unlikely]] {
                // The answer to a heartbeat ping. The deadline filed is the ping's pong_timeout, which may lie beyond
                // the next quiet window: file the new one now, so that pings stay ping_interval apart.
                heartbeat_ = Heartbeat::answered;
                watch();
            }
        }
    }

    /// When the peer last sent bytes (steady clock).
    clock::time_point last_heard() const noexcept {
        return connect_steady_ + clock::duration(last_activity_.load(std::memory_order_relaxed));
    }

    // Declared in two groups: what every message touches first, packed into as few cache lines as it takes (at
    // 100 connections and depth 1, each line of it a message reaches is a first-level miss), then what only the
    // handshake, a close, a ping or `info()` reads.
    Server<UserData>& server_;
    const ConnectionId id_;
    AnyTransport transport_;
    detail::EventLoop<UserData>* loop_;  // the transport's event loop: its executor, registry shard, topics and counters
    std::unique_ptr<detail::ConnectionDeflate> deflate_;  // null without permessage-deflate (set before opening)
    UserData data_{};

    std::atomic<ConnectionStatus> status_{ConnectionStatus::connection};
    clock::time_point connect_steady_;
    std::atomic<clock::rep> last_activity_;
    detail::LocalCounter bytes_in_, bytes_out_;  // written on the connection's thread only

    // Write path: `pending_` fills from any thread under `mutex_`; `writing_queue_` belongs to the running write.
    mutable detail::SmallMutex mutex_;  // 4 bytes: std::mutex is 40
    bool writing_ = false;
    bool flush_posted_ = false;
    std::atomic<bool> flush_follows_{false};  // set by the conn thread alone; read under `mutex_` by any thread
    bool write_failed_ = false;
    detail::OutputQueue pending_;
    detail::OutputQueue writing_queue_;
    std::vector<asio::const_buffer> buffers_;
    std::size_t written_before_ = 0;  // write_rest: bytes of the running write already written
    std::size_t in_flight_ = 0;
    bool close_sent_ = false;
    bool pong_queued_ = false;  // `pending_` holds a pong
    bool pong_owed_ = false;    // `owed_pong_` answers the latest ping: it joins `pending_` at the next flush

    // Conn thread only, but for the two atomics.
    bool more_input_ = false;               // the message being handled is not the last in its read
    // `pinged`: a heartbeat ping went out and nothing has arrived since; `answered`: bytes came after one, and the
    // transport's buffers go at the next wait for input.
    enum class Heartbeat : std::uint8_t { quiet, pinged, answered } heartbeat_ = Heartbeat::quiet;
    std::atomic<bool> paused_{false};       // pause_reading(): the session reads nothing until resume_reading()
    std::atomic<bool> drain_armed_{false};  // the socket pushed back or a push was refused: on_drain is owed
    bool opened_ = false;  ///< on_open ran: on_close will run too
    bool finished_ = false;
    bool awaiting_input_ = false;  // the session coroutine waits for input (see `hibernate`)
    bool hibernating_ = false;
    bool hibernation_counted_ = false;  // see `count_hibernation`
    std::uint32_t first_unwritten_ = 0;  // write_rest: the first of `buffers_` not wholly written
    std::unique_ptr<MessageReader> reader_;  // null while at rest: lent to the loop's pool (`lend_message_buffer`)
    clock::time_point deadline_ = clock::time_point::max();
    clock::duration quiet_window_{};  // open: silence after which the watchdog acts (ping or idle close); 0: never
    std::unique_ptr<asio::steady_timer> session_signal_;  // wakes the session waiting for drain or resume

    // Seldom touched.
    asio::ip::tcp::endpoint remote_;
    std::chrono::system_clock::time_point connect_system_;
    std::unique_ptr<Agreed> agreed_;  // null on plain TCP without a subprotocol (most connections): 8 bytes there
    std::unique_ptr<std::string> owed_pong_;  // made by the first ping that arrives while a pong is still queued
    std::unique_ptr<CloseInfo> close_info_;  // made when the connection starts to end: the first reason wins
    std::vector<std::uint8_t> read_buffer_;  // conn thread: this connection's own while the loop's bulk one is busy
    typename detail::EventLoop<UserData>::Deadlines::Hook deadline_hook_;  // conn thread
};

} // namespace swirl
