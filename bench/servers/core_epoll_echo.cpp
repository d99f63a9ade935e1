// core_epoll_echo: swirl's sans-I/O protocol core on a bare epoll loop, no Asio and no framework. It measures what an
// event loop of swirl's own (issue 16's "own loop" lever) could at best gain over the Asio one the server runs on.
//
// The loop is shaped like the minimal C echo (peers/c_epoll_echo.c) and like uSockets: level-triggered, one recv into
// one 512 KiB read buffer per loop and one send per ready socket, the replies gathered in one output buffer per loop.
// What runs between the two calls is swirl's: `RequestParser`, `validate_upgrade` and `SwitchingProtocols` for the
// upgrade, `MessageReader` for the frames (masking, UTF-8, limits, control frames), `encode_unmasked_header` for the
// replies. Every message is echoed with its opcode, a ping answered, a close frame answered and the connection closed;
// a protocol error is answered with its close code. A short send keeps the rest and stops reading until it is gone.
// It has none of what makes a server: no timeouts, no backpressure limits beyond one read's replies, no handlers.
//   core_epoll_echo [--host 127.0.0.1] [--port 0]
#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/handshake.hpp>
#include <swirl/protocol/http_request.hpp>
#include <swirl/protocol/message_reader.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t read_size = 512 * 1024;

struct Connection {
    explicit Connection(int socket) noexcept : fd(socket) {}
    int fd;
    bool upgraded = false;
    bool closing = false;  // a close frame is queued: the connection ends once it is sent
    swirl::RequestParser parser;
    swirl::MessageReader reader{swirl::Role::server};
    std::string pending;  // what a short send left, from `sent` on
    std::size_t sent = 0;
};

/// One loop's buffers: where reads land and where a read's replies gather.
struct Loop {
    int epoll = -1;
    std::vector<std::uint8_t> input = std::vector<std::uint8_t>(read_size);
    std::vector<std::uint8_t> output;  // grows to the largest read's replies; `used` bytes of it are this read's
    std::size_t used = 0;

    void append(swirl::Opcode opcode, std::string_view payload) {
        const std::size_t need = used + swirl::max_frame_header_size + payload.size();
        if (output.size() < need) output.resize(need);
        std::uint8_t* at = output.data() + used;
        const std::size_t head = swirl::encode_unmasked_header(at, opcode, true, payload.size());
        std::memcpy(at + head, payload.data(), payload.size());
        used += head + payload.size();
    }
};

void die(const char* what) {
    std::perror(what);
    std::exit(1);
}

void watch(const Loop& loop, Connection* c, int op, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(loop.epoll, op, c->fd, &ev) < 0) die("epoll_ctl");
}

void close_connection(Connection* c) {
    ::close(c->fd);  // also leaves the epoll set
    delete c;
}

bool would_block() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

/// The frames of one read: each message echoed, pings answered, a close or an error answered with a close frame.
void handle_frames(Loop& loop, Connection* c, std::span<const std::uint8_t> input) {
    while (!input.empty()) {
        const swirl::ReadResult r = c->reader.read(input);
        input = input.subspan(r.consumed);
        const swirl::Frame& frame = c->reader.frame();
        switch (r.event) {
        case swirl::ReadEvent::need_more: return;
        case swirl::ReadEvent::message: loop.append(frame.opcode, frame.payload); break;
        case swirl::ReadEvent::ping: loop.append(swirl::Opcode::pong, frame.payload); break;
        case swirl::ReadEvent::pong: break;
        case swirl::ReadEvent::close:
            loop.append(swirl::Opcode::close, swirl::close_payload(frame.code, {}));
            c->closing = true;
            return;
        case swirl::ReadEvent::error:
            loop.append(swirl::Opcode::close, swirl::close_payload(c->reader.error_code(), c->reader.error_reason()));
            c->closing = true;
            return;
        }
    }
}

/// Sends this read's replies in one call; what the socket does not take waits for EPOLLOUT.
void send_replies(Loop& loop, Connection* c) {
    if (loop.used == 0) return;
    const ssize_t n = ::send(c->fd, loop.output.data(), loop.used, MSG_NOSIGNAL);
    if (n < 0 && !would_block()) return close_connection(c);
    const std::size_t sent = n > 0 ? static_cast<std::size_t>(n) : 0;
    if (sent == loop.used) {
        if (c->closing) close_connection(c);
        return;
    }
    c->pending.assign(reinterpret_cast<const char*>(loop.output.data()) + sent, loop.used - sent);
    c->sent = 0;
    watch(loop, c, EPOLL_CTL_MOD, EPOLLOUT);
}

void ready(Loop& loop, Connection* c, std::uint32_t events) {
    if (!c->pending.empty()) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        const ssize_t n = ::send(c->fd, c->pending.data() + c->sent, c->pending.size() - c->sent, MSG_NOSIGNAL);
        if (n < 0 && !would_block()) return close_connection(c);
        if (n > 0) c->sent += static_cast<std::size_t>(n);
        if (c->sent < c->pending.size()) return;
        c->pending.clear();
        if (c->closing) return close_connection(c);
        watch(loop, c, EPOLL_CTL_MOD, EPOLLIN);
        return;
    }
    const ssize_t n = ::recv(c->fd, loop.input.data(), loop.input.size(), 0);
    if (n == 0 || (n < 0 && !would_block())) return close_connection(c);
    if (n < 0) return;
    std::span<const std::uint8_t> input(loop.input.data(), static_cast<std::size_t>(n));
    loop.used = 0;
    if (!c->upgraded) {
        const auto parsed = c->parser.feed(std::string_view(reinterpret_cast<const char*>(input.data()), input.size()));
        if (parsed.status == swirl::RequestParser::Status::incomplete) return;
        const swirl::Request& request = c->parser.request();
        if (parsed.status == swirl::RequestParser::Status::error ||
            swirl::validate_upgrade(request) != swirl::HandshakeError::none)
            return close_connection(c);
        const swirl::SwitchingProtocols answer(*request.header("Sec-WebSocket-Key"));
        const std::string_view bytes = answer.bytes();
        if (loop.output.size() < bytes.size()) loop.output.resize(bytes.size());
        std::memcpy(loop.output.data(), bytes.data(), bytes.size());
        loop.used = bytes.size();
        c->upgraded = true;
        input = input.subspan(parsed.consumed);
    }
    handle_frames(loop, c, input);
    send_replies(loop, c);
}

void accept_all(const Loop& loop, int listener) {
    for (;;) {
        const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN, or an error on one connection attempt
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        watch(loop, new Connection(fd), EPOLL_CTL_ADD, EPOLLIN);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const char* host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--host") == 0) host = argv[i + 1];
        else if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        std::fprintf(stderr, "core_epoll_echo: not an IPv4 address: %s\n", host);
        return 1;
    }
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind");
    if (::listen(listener, 4096) < 0) die("listen");
    socklen_t len = sizeof addr;
    if (getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0) die("getsockname");

    Loop loop;
    if ((loop.epoll = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the listening socket
    if (epoll_ctl(loop.epoll, EPOLL_CTL_ADD, listener, &ev) < 0) die("epoll_ctl");

    std::printf("listening on ws://%s:%u\n", host, static_cast<unsigned>(ntohs(addr.sin_port)));
    std::fflush(stdout);
    std::vector<epoll_event> events(512);
    for (;;) {
        const int n = epoll_wait(loop.epoll, events.data(), static_cast<int>(events.size()), -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (const epoll_event& e : std::span(events.data(), static_cast<std::size_t>(n))) {
            if (e.data.ptr == nullptr) accept_all(loop, listener);
            else ready(loop, static_cast<Connection*>(e.data.ptr), e.events);
        }
    }
}
