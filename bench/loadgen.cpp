// loadgen: the benchmark client. One thread, epoll, no Asio, so that it costs about what the server costs and the
// same client drives every server (swirl, raw TCP, Beast, websocketpp, Node ws).
//
//   loadgen --port P [--host 127.0.0.1] [--path /] --pid SERVER_PID --mode MODE [options]
//
// Modes:
//   echo       N connections, each keeping --depth messages of --size bytes in flight (1 = ping-pong); every reply is
//              verified byte for byte against what was sent (the payload carries the connection and sequence number)
//   raw        the same over plain TCP (no handshake, no framing): --size-byte chunks echoed back
//   handshake  --concurrency parallel loops of connect, upgrade, close handshake, repeated
//   broadcast  --subscribers connections plus one publisher; the publisher sends "publish <payload>" and the server
//              sends <payload> to everyone; at most --depth broadcasts are outstanding (not yet seen by every
//              subscriber); reports deliveries to subscribers per second
//   pubsub     the same with topics: subscriber i sends "subscribe t<i % --topics>" and, for its share of --idle-topics,
//              "subscribe idle<j>" (j = i, i + subscribers, ...; never published to), each answered "subscribed <topic>"
//              before the measured run; the publisher (subscribed to nothing) sends "publish t<k % topics> <payload>"
//              round-robin and the server sends <payload> to that topic's subscribers
//   idle       opens --connections upgraded connections, holds them, reports the server's VmRSS growth per connection;
//              with --exchange (implied by --deflate) each first exchanges one text message of --size bytes
//
// TLS (built with OpenSSL, LOADGEN_TLS=1): --tls runs every connection of modes echo, raw and handshake through a
// non-blocking OpenSSL client on the same epoll loop (SSL_set_fd on the socket; WANT_READ/WANT_WRITE become epoll
// interest). TLS 1.3 unless the server refuses it; no session cache and no tickets asked for, so every handshake is a
// full one. --tls-ca FILE verifies the server's certificate against FILE and --host (an IP address SAN); without it
// the certificate is not verified. Echo and raw connections are set up (TCP + TLS handshake + upgrade) blocking,
// before the loop; handshake mode runs connect, TLS handshake, upgrade and close all non-blocking in the loop, and
// with --no-upgrade it is the TLS handshake alone (then close_notify, half-close, wait for the server's EOF), for a
// TLS server without WebSocket. The plain path is untouched: one branch per event on the connection's SSL pointer.
//
// permessage-deflate (built with zlib, LOADGEN_DEFLATE=1): --deflate offers the extension (--deflate-offer, default
// "permessage-deflate; client_no_context_takeover; server_no_context_takeover") in modes echo, broadcast and idle, and
// sends --payloads distinct chat-message JSON texts of --size bytes (a seeded PRNG, --seed; in echo mode at least the
// next prime above --connections, so that no two connections send the same text at the same sequence number)
// compressed once at start (raw deflate, 00 00 ff ff stripped, RSV1) and masked once; replies are inflated and checked
// (see Pool below). The server's answer is checked against the offer (RFC 7692 §7.1: a parameter it may not add, or
// an offered server_no_context_takeover it dropped, ends the run). Where the server declines, the same payloads go
// uncompressed. The JSON line then also carries the answer, the payload count and seed, and compressed / uncompressed
// replies. The plain path is unchanged.
//
// Every mode counts the WebSocket bytes read and written in the measured window (wire_rx, wire_tx; with --tls the
// bytes inside TLS, before encryption). `loadgen --features` prints what it was built with ("tls", "deflate").
//
// Output: one JSON line on stdout (machine-readable), one human-readable line on stderr. Exit status 0 when the
// run completed without a verification or connection error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <cstring>
#include <memory>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#ifndef LOADGEN_DEFLATE
#define LOADGEN_DEFLATE 0
#endif
#ifndef LOADGEN_TLS
#define LOADGEN_TLS 0
#endif

#if LOADGEN_DEFLATE
#include <zlib.h>
#endif

#if LOADGEN_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#else
struct ssl_st;  // never created without OpenSSL
using SSL = ssl_st;
#endif

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Options

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::string path = "/";
    std::string mode = "echo";
    int pid = 0;                 ///< server process whose CPU time and RSS are read from /proc
    int connections = 100;
    std::size_t size = 20;       ///< message size in bytes (for broadcast: the delivered payload)
    int depth = 1;               ///< messages in flight per connection (broadcast, pubsub: outstanding publishes)
    bool binary = false;
    double warmup = 1.0;         ///< seconds before the measured window
    double duration = 3.0;       ///< seconds measured
    long long messages = 0;      ///< echo/raw: stop after this many replies instead of a duration (for strace)
    int concurrency = 50;        ///< handshake mode: parallel connect/upgrade/close loops
    int subscribers = 1000;      ///< broadcast and pubsub modes
    int topics = 1;              ///< pubsub: topics published to, round-robin ("t0", "t1", ...)
    int idle_topics = 0;         ///< pubsub: topics subscribed to but never published to ("idle0", ...)
    double hold = 1.0;           ///< idle mode: seconds to hold before reading RSS
    bool exchange = false;       ///< idle mode: every connection exchanges one message before it is held
    std::string label;           ///< copied into the JSON line
    bool json = false;           ///< text messages are dispatcher requests {"class":"Index","action":"echo","content":"..."}
    bool tls = false;            ///< every connection speaks TLS (echo, raw, handshake)
    std::string tls_ca;          ///< verify the server's certificate against this file (else no verification)
    bool no_upgrade = false;     ///< handshake mode: TLS handshake only (no HTTP upgrade, no close frames)
    bool deflate = false;        ///< permessage-deflate: offer it, send --payloads distinct JSON messages compressed
    std::string deflate_offer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover";
    int payloads = 64;           ///< --deflate: distinct payloads (chat-message JSON from a seeded PRNG); see payload_count
    std::uint64_t seed = 17;     ///< --deflate: the PRNG's seed
};

[[noreturn]] void usage(int status) {
    std::fprintf(status ? stderr : stdout,
                 "usage: loadgen --port P [--host H] [--path /] [--pid SERVER_PID] [--mode echo|raw|handshake|broadcast|pubsub|idle]\n"
                 "               [--connections N] [--size BYTES] [--depth N] [--binary] [--text] [--warmup S] [--duration S]\n"
                 "               [--messages N] [--concurrency N] [--subscribers N] [--topics N] [--idle-topics N] [--hold S] [--exchange]\n"
                 "               [--label TEXT] [--json]\n"
                 "               [--tls [--tls-ca FILE]] [--no-upgrade]\n"
                 "               [--deflate [--deflate-offer EXTENSION] [--payloads N] [--seed N]]\n"
                 "       loadgen --features   (prints the optional parts built in: tls, deflate)\n");
    std::exit(status);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--help" || a == "-h") usage(0);
        if (a == "--features") {
            std::printf("%s%s\n", LOADGEN_TLS ? "tls " : "", LOADGEN_DEFLATE ? "deflate" : "");
            std::exit(0);
        }
        if (a == "--binary") { o.binary = true; continue; }
        if (a == "--text") { o.binary = false; continue; }
        if (a == "--json") { o.json = true; o.binary = false; continue; }
        if (a == "--tls") { o.tls = true; continue; }
        if (a == "--no-upgrade") { o.no_upgrade = true; continue; }
        if (a == "--deflate") { o.deflate = true; continue; }
        if (a == "--exchange") { o.exchange = true; continue; }
        if (i + 1 >= argc) usage(2);
        const char* v = argv[++i];
        if (a == "--host") o.host = v;
        else if (a == "--port") o.port = std::atoi(v);
        else if (a == "--path") o.path = v;
        else if (a == "--mode") o.mode = v;
        else if (a == "--pid") o.pid = std::atoi(v);
        else if (a == "--connections") o.connections = std::atoi(v);
        else if (a == "--size") o.size = static_cast<std::size_t>(std::atoll(v));
        else if (a == "--depth") o.depth = std::max(1, std::atoi(v));
        else if (a == "--warmup") o.warmup = std::atof(v);
        else if (a == "--duration") o.duration = std::atof(v);
        else if (a == "--messages") o.messages = std::atoll(v);
        else if (a == "--concurrency") o.concurrency = std::max(1, std::atoi(v));
        else if (a == "--subscribers") o.subscribers = std::atoi(v);
        else if (a == "--topics") o.topics = std::atoi(v);
        else if (a == "--idle-topics") o.idle_topics = std::max(0, std::atoi(v));
        else if (a == "--hold") o.hold = std::atof(v);
        else if (a == "--label") o.label = v;
        else if (a == "--tls-ca") o.tls_ca = v;
        else if (a == "--deflate-offer") o.deflate_offer = v;
        else if (a == "--payloads") o.payloads = std::max(1, std::atoi(v));
        else if (a == "--seed") o.seed = std::strtoull(v, nullptr, 10);
        else usage(2);
    }
    if (o.port <= 0) usage(2);
#if !LOADGEN_DEFLATE
    if (o.deflate) {
        std::fprintf(stderr, "loadgen: --deflate: built without zlib\n");
        std::exit(2);
    }
#endif
#if !LOADGEN_TLS
    if (o.tls) {
        std::fprintf(stderr, "loadgen: --tls: built without OpenSSL\n");
        std::exit(2);
    }
#endif
    if (o.no_upgrade && !(o.tls && o.mode == "handshake")) {
        std::fprintf(stderr, "loadgen: --no-upgrade is for --tls --mode handshake\n");
        std::exit(2);
    }
    if (o.mode == "pubsub" && (o.topics < 1 || o.topics > o.subscribers)) {
        std::fprintf(stderr, "loadgen: --topics must be between 1 and --subscribers (every topic needs a subscriber)\n");
        std::exit(2);
    }
    if (o.deflate && o.mode != "echo" && o.mode != "broadcast" && o.mode != "idle") {
        std::fprintf(stderr, "loadgen: --deflate works in modes echo, broadcast and idle\n");
        std::exit(2);
    }
    if (o.deflate && (o.tls || o.json)) {
        std::fprintf(stderr, "loadgen: --deflate goes without --tls and --json\n");
        std::exit(2);
    }
    if (o.tls && o.mode != "echo" && o.mode != "raw" && o.mode != "handshake") {
        std::fprintf(stderr, "loadgen: --tls works in modes echo, raw and handshake\n");
        std::exit(2);
    }
    return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Clock, /proc, histogram

std::int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// CPU time of a whole process (all threads) in seconds, from /proc/PID/stat; -1 when unreadable.
struct CpuTimes {
    double user = -1, system = -1;
    double total() const { return user < 0 ? -1 : user + system; }
};

CpuTimes process_cpu_times(int pid) {
    if (pid <= 0) return {};
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return {};
    const auto paren = line.rfind(')');  // the command name may contain spaces and parentheses
    if (paren == std::string::npos) return {};
    std::istringstream fields(line.substr(paren + 2));
    std::string f;
    unsigned long long utime = 0, stime = 0;
    // After ")": field 3 is state; utime and stime are fields 14 and 15.
    for (int field = 3; field <= 15 && fields >> f; ++field) {
        if (field == 14) utime = std::strtoull(f.c_str(), nullptr, 10);
        if (field == 15) stime = std::strtoull(f.c_str(), nullptr, 10);
    }
    const auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    return {static_cast<double>(utime) / ticks, static_cast<double>(stime) / ticks};
}

/// VmRSS (or with `field` = "VmHWM:", the peak RSS) of a process in bytes, from /proc/PID/status; -1 when unreadable.
long long process_rss_bytes(int pid, std::string_view field = "VmRSS:") {
    if (pid <= 0) return -1;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field, 0) == 0) return std::atoll(line.c_str() + field.size()) * 1024;
    return -1;
}

double own_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/// Log-linear latency histogram: 32 sub-buckets per power of two (about 3% resolution), nanoseconds.
class Histogram {
public:
    void add(std::int64_t ns) {
        const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 1));
        ++buckets_[index(v)];
        ++count_;
    }
    std::uint64_t count() const { return count_; }
    /// The value (ns) at quantile q, as the middle of its bucket.
    double quantile(double q) const {
        if (count_ == 0) return 0;
        const auto target = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets_.size(); ++i) {
            seen += buckets_[i];
            if (seen >= target) return (lower(i) + lower(i + 1)) / 2.0;
        }
        return lower(buckets_.size());
    }

private:
    static constexpr unsigned sub_bits = 5;
    static std::size_t index(std::uint64_t v) {
        if (v < (1u << sub_bits)) return v;
        const unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(v));
        const unsigned shift = msb - sub_bits;
        return std::min<std::size_t>(((shift + 1) << sub_bits) + ((v >> shift) & ((1u << sub_bits) - 1)), 64 * 32 - 1);
    }
    static double lower(std::size_t i) {
        if (i < (1u << sub_bits)) return static_cast<double>(i);
        const std::size_t shift = (i >> sub_bits) - 1;
        const std::size_t mantissa = (i & ((1u << sub_bits) - 1)) | (1u << sub_bits);
        return static_cast<double>(mantissa) * static_cast<double>(1ull << shift);
    }
    std::array<std::uint64_t, 64 * 32> buckets_{};
    std::uint64_t count_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Sockets

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "loadgen: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

sockaddr_in server_address(const Options& o) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(o.port));
    if (inet_pton(AF_INET, o.host.c_str(), &a.sin_addr) != 1) {
        std::fprintf(stderr, "loadgen: --host must be an IPv4 address\n");
        std::exit(2);
    }
    return a;
}

void set_nodelay(int fd) {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_nonblocking(int fd, bool on) {
    const int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

/// The fixed key of RFC 6455 section 1.3 and its accept value: checking the accept value proves the server ran the
/// handshake algorithm without the client computing SHA-1.
constexpr std::string_view ws_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view ws_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string upgrade_request(const Options& o) {
    // Appended, not built with "literal" + string (g++ 12 -O3 warns there, a false -Wrestrict).
    std::string r("GET ");
    r.append(o.path).append(" HTTP/1.1\r\nHost: ").append(o.host).append(":").append(std::to_string(o.port));
    r.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ").append(ws_key);
    r.append("\r\nSec-WebSocket-Version: 13\r\n");
    if (o.deflate) r.append("Sec-WebSocket-Extensions: ").append(o.deflate_offer).append("\r\n");
    r.append("\r\n");
    return r;
}

/// --deflate: what the servers answered (every connection's answer is recorded and must be the same).
struct DeflateAnswers {
    int accepted = 0, declined = 0;
    int server_context = 0;       ///< accepted without server_no_context_takeover: replies need a per-connection inflater
    std::string first;            ///< the first answer as sent (the Sec-WebSocket-Extensions value), for the report
    std::string normalized;       ///< its parameters, parsed: every later answer must match
} deflate_answers;

/// One extension of a Sec-WebSocket-Extensions value: its name and parameters (lower case, trimmed, quotes removed).
struct Extension {
    std::string name;
    std::vector<std::pair<std::string, std::string>> params;
    const std::string* find(std::string_view param) const {
        for (const auto& [k, v] : params)
            if (k == param) return &v;
        return nullptr;
    }
};

std::string_view trimmed(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

std::string lower_trimmed(std::string_view v) {
    v = trimmed(v);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    std::string out(v);
    for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

/// Parses "name; p1; p2=v" (one extension: a comma, a second one, is refused, as are repeated parameters).
bool parse_extension(std::string_view value, Extension& e) {
    if (value.find(',') != std::string_view::npos) return false;
    bool first = true;
    while (true) {
        const auto semi = value.find(';');
        const std::string_view part = value.substr(0, semi);
        if (first) {
            e.name = lower_trimmed(part);
            first = false;
        } else {
            const auto eq = part.find('=');
            std::string key = lower_trimmed(part.substr(0, eq));
            std::string val = eq == std::string_view::npos ? std::string() : lower_trimmed(part.substr(eq + 1));
            if (key.empty() || e.find(key)) return false;
            e.params.emplace_back(std::move(key), std::move(val));
        }
        if (semi == std::string_view::npos) break;
        value.remove_prefix(semi + 1);
    }
    return !e.name.empty();
}

[[noreturn]] void bad_answer(const char* why, std::string_view answer) {
    std::fprintf(stderr, "loadgen: permessage-deflate answer \"%.*s\": %s\n", static_cast<int>(answer.size()), answer.data(), why);
    std::exit(1);
}

/// Records the Sec-WebSocket-Extensions answer of an upgrade response (--deflate) and checks it against our offer
/// (RFC 7692 §7.1): exits when the server added client_max_window_bits we did not offer (or limits our window below
/// the 15 bits our messages were compressed with), dropped an offered server_no_context_takeover, answered with a
/// parameter or extension we do not know, or answered unlike the connections before. Only the
/// Sec-WebSocket-Extensions header line is read. Returns whether the extension was agreed.
bool note_deflate_answer(std::string_view head, const Options& o) {
    std::string value;  // the header's value; several such lines are one comma-separated list (and then refused)
    for (std::size_t at = head.find("\r\n"); at != std::string_view::npos && at + 2 < head.size();) {
        const std::size_t begin = at + 2, end = std::min(head.find("\r\n", begin), head.size());
        const std::string_view line = head.substr(begin, end - begin);
        constexpr std::string_view name = "sec-websocket-extensions:";
        if (line.size() >= name.size() && lower_trimmed(line.substr(0, name.size())) == name)
            value.append(value.empty() ? "" : ", ").append(line.substr(name.size()));
        at = end == head.size() ? std::string_view::npos : end;
    }
    const std::string_view shown = trimmed(value);
    Extension answer, offer;
    if (shown.empty()) {
        if (deflate_answers.accepted > 0) bad_answer("declined on this connection, accepted on others", shown);
        ++deflate_answers.declined;
        return false;
    }
    if (!parse_extension(value, answer)) bad_answer("not one extension", shown);
    if (answer.name != "permessage-deflate") bad_answer("not permessage-deflate", shown);
    if (!parse_extension(o.deflate_offer, offer)) bad_answer("our own offer (--deflate-offer) does not parse", shown);
    for (const auto& [k, v] : answer.params) {
        if (k == "server_no_context_takeover" || k == "client_no_context_takeover") {
            if (!v.empty()) bad_answer("a no_context_takeover parameter with a value", shown);
        } else if (k == "server_max_window_bits" || k == "client_max_window_bits") {
            const int bits = std::atoi(v.c_str());
            if (v.empty() || bits < 8 || bits > 15) bad_answer("a window size outside 8..15", shown);
            // §7.1.2.2: only when offered; and our messages are compressed with a 15-bit window, once.
            if (k == "client_max_window_bits" && !offer.find(k)) bad_answer("client_max_window_bits was not offered", shown);
            if (k == "client_max_window_bits" && bits < 15) bad_answer("limits our window (our messages use 15 bits)", shown);
        } else {
            bad_answer("an unknown parameter", shown);
        }
    }
    if (offer.find("server_no_context_takeover") && !answer.find("server_no_context_takeover"))
        bad_answer("the offered server_no_context_takeover was dropped", shown);
    std::string normalized = answer.name;
    for (const auto& [k, v] : answer.params) normalized.append(";").append(k).append(v.empty() ? "" : "=").append(v);
    if (deflate_answers.declined > 0) bad_answer("accepted on this connection, declined on others", shown);
    if (deflate_answers.accepted > 0 && normalized != deflate_answers.normalized)
        bad_answer(std::string("unlike the first connection's: ").append(deflate_answers.first).c_str(), shown);
    if (deflate_answers.accepted == 0) {
        deflate_answers.first = shown;
        deflate_answers.normalized = normalized;
    }
    ++deflate_answers.accepted;
    if (!answer.find("server_no_context_takeover")) ++deflate_answers.server_context;
    return true;
}

/// True when `head` (a complete response header) is a 101 with the right accept value.
bool valid_upgrade_response(std::string_view head) {
    return head.rfind("HTTP/1.1 101", 0) == 0 && head.find(ws_accept) != std::string_view::npos;
}

/// Blocking connect (+ upgrade unless raw); returns a non-blocking socket with TCP_NODELAY.
int open_connection(const Options& o, const sockaddr_in& addr, bool upgrade) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    set_nodelay(fd);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) die("connect");
    if (upgrade) {
        const std::string req = upgrade_request(o);
        if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) die("write upgrade request");
        // Peek, then consume exactly the response header so no frame byte that follows is lost.
        char buf[4096];
        std::size_t end = 0;
        while (true) {
            const ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK);
            if (n <= 0) die("read upgrade response");
            const std::string_view seen(buf, static_cast<std::size_t>(n));
            if (const auto p = seen.find("\r\n\r\n"); p != std::string_view::npos) {
                end = p + 4;
                break;
            }
            if (static_cast<std::size_t>(n) == sizeof buf) {
                std::fprintf(stderr, "loadgen: upgrade response too long\n");
                std::exit(1);
            }
            usleep(100);
        }
        if (recv(fd, buf, end, 0) != static_cast<ssize_t>(end)) die("consume upgrade response");
        if (!valid_upgrade_response(std::string_view(buf, end))) {
            std::fprintf(stderr, "loadgen: handshake refused: %.*s\n", static_cast<int>(std::min<std::size_t>(end, 200)), buf);
            std::exit(1);
        }
        if (o.deflate) note_deflate_answer(std::string_view(buf, end), o);
    }
    set_nonblocking(fd, true);
    return fd;
}

#if LOADGEN_TLS
SSL_CTX* tls_ctx = nullptr;

[[noreturn]] void die_tls(const char* what) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    std::fprintf(stderr, "loadgen: %s: %s\n", what, buf);
    std::exit(1);
}

/// The client context: TLS 1.3 preferred (default), no session cache or tickets (every handshake full), verification
/// only with --tls-ca; records read ahead (fewer read syscalls), partial writes from a buffer that may move.
void init_tls(const Options& o) {
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) die_tls("SSL_CTX_new");
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(tls_ctx, 1);
    if (!o.tls_ca.empty()) {
        if (SSL_CTX_load_verify_file(tls_ctx, o.tls_ca.c_str()) != 1) die_tls("--tls-ca");
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, nullptr);
    }
}

SSL* new_tls(const Options& o, int fd) {
    SSL* ssl = SSL_new(tls_ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) die_tls("SSL_new");
    if (!o.tls_ca.empty() && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), o.host.c_str()) != 1) die_tls("host");
    SSL_set_connect_state(ssl);
    return ssl;
}

/// Blocking connect + TLS handshake (+ upgrade unless raw); the socket is non-blocking afterwards.
std::pair<int, SSL*> open_tls_connection(const Options& o, const sockaddr_in& addr, bool upgrade) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    set_nodelay(fd);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) die("connect");
    SSL* ssl = new_tls(o, fd);
    if (SSL_connect(ssl) != 1) die_tls("TLS handshake");
    if (upgrade) {
        const std::string req = upgrade_request(o);
        std::size_t w = 0;
        if (SSL_write_ex(ssl, req.data(), req.size(), &w) != 1 || w != req.size()) die_tls("write upgrade request");
        // The server sends nothing after its 101 until we send: whatever follows the header is an error.
        std::string in;
        char buf[4096];
        while (in.find("\r\n\r\n") == std::string::npos) {
            std::size_t n = 0;
            if (SSL_read_ex(ssl, buf, sizeof buf, &n) != 1) die_tls("read upgrade response");
            in.append(buf, n);
            if (in.size() > 65536) {
                std::fprintf(stderr, "loadgen: upgrade response too long\n");
                std::exit(1);
            }
        }
        if (in.find("\r\n\r\n") + 4 != in.size() || !valid_upgrade_response(in)) {
            std::fprintf(stderr, "loadgen: handshake refused: %.*s\n", static_cast<int>(std::min<std::size_t>(in.size(), 200)),
                         in.c_str());
            std::exit(1);
        }
    }
    set_nonblocking(fd, true);
    return {fd, ssl};
}
#endif

void raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Messages: every payload is a fixed pattern whose first bytes carry a tag (connection, sequence number), so each
// reply is checked against exactly the message it answers. Outgoing frames are masked with one fixed key, so the
// masked pattern is computed once and only the header and tag are produced per message (the client stays cheap).

constexpr std::array<std::uint8_t, 4> mask_key = {0x37, 0xfa, 0x21, 0x3d};
constexpr std::size_t tag_size = 16;

/// 16 ASCII letters: 8 for `id`, 8 for `seq` (4 bits each, 'a'..'p'), valid UTF-8 for text messages.
std::array<std::uint8_t, tag_size> make_tag(std::uint32_t id, std::uint64_t seq) {
    std::array<std::uint8_t, tag_size> t{};
    for (int i = 0; i < 8; ++i) t[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>('a' + ((id >> (28 - 4 * i)) & 15));
    for (int i = 0; i < 8; ++i)
        t[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>('a' + ((seq >> (28 - 4 * i)) & 15));
    return t;
}

struct Pattern {
    std::vector<std::uint8_t> plain;   ///< expected payload bytes (the tag area is overwritten per message)
    std::vector<std::uint8_t> masked;  ///< plain, masked with mask_key from offset 0
    std::size_t tag_at = 0;            ///< where the tag starts in `plain`
    std::size_t tag_len = 0;
};

/// The dispatcher's echo request: the reply is the same bytes (keys in this order, content returned unchanged).
constexpr std::string_view json_open = R"({"class":"Index","action":"echo","content":")";
constexpr std::string_view json_close = R"("})";

Pattern make_pattern(std::size_t size, bool ws, bool json) {
    Pattern p;
    p.plain.resize(size);
    for (std::size_t i = 0; i < size; ++i) p.plain[i] = static_cast<std::uint8_t>('A' + (i * 7 + i / 26) % 26);
    if (json) {
        if (size < json_open.size() + json_close.size()) {
            std::fprintf(stderr, "loadgen: --json needs --size >= %zu\n", json_open.size() + json_close.size());
            std::exit(2);
        }
        std::copy(json_open.begin(), json_open.end(), p.plain.begin());
        std::copy(json_close.begin(), json_close.end(), p.plain.end() - static_cast<std::ptrdiff_t>(json_close.size()));
        p.tag_at = json_open.size();
        p.tag_len = std::min(tag_size, size - json_open.size() - json_close.size());
    } else {
        p.tag_len = std::min(tag_size, size);
    }
    p.masked = p.plain;
    if (ws)
        for (std::size_t i = 0; i < p.masked.size(); ++i) p.masked[i] ^= mask_key[i % 4];
    return p;
}

/// Writes the header of a masked client frame (FIN, `opcode`, payload length `len`, `key`) at `out`: 6 to 14 bytes.
std::size_t put_client_header(std::uint8_t* out, int opcode, std::uint64_t len, const std::array<std::uint8_t, 4>& key) {
    std::size_t n = 0;
    out[n++] = static_cast<std::uint8_t>(0x80 | opcode);
    if (len < 126) {
        out[n++] = static_cast<std::uint8_t>(0x80 | len);
    } else if (len < 65536) {
        out[n++] = 0x80 | 126;
        out[n++] = static_cast<std::uint8_t>(len >> 8);
        out[n++] = static_cast<std::uint8_t>(len);
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; --i) out[n++] = static_cast<std::uint8_t>(len >> (8 * i));
    }
    for (const auto k : key) out[n++] = k;
    return n;
}

/// A whole masked client frame (set-up and control messages: subscribe, close), masked with mask_key.
std::string client_frame(int opcode, std::string_view payload) {
    std::string frame(14 + payload.size(), '\0');
    auto* out = reinterpret_cast<std::uint8_t*>(frame.data());
    std::size_t n = put_client_header(out, opcode, payload.size(), mask_key);
    for (std::size_t i = 0; i < payload.size(); ++i) out[n++] = static_cast<std::uint8_t>(payload[i]) ^ mask_key[i % 4];
    frame.resize(n);
    return frame;
}

/// Outgoing bytes before the pattern: "publish " (broadcast), "publish t<int> " (pubsub); at most this long.
constexpr std::size_t max_prefix = 32;

/// Header (+ mask key), the masked prefix, the pattern's bytes before the tag and the tag of one outgoing message; the
/// rest comes from Pattern::masked.
struct Head {
    std::array<std::uint8_t, 14 + max_prefix + json_open.size() + tag_size> bytes{};
    std::size_t size = 0;       ///< bytes used in `bytes`
    const std::uint8_t* tail = nullptr;  ///< the rest of the frame, shared (Pattern::masked, or a --deflate payload)
    std::size_t tail_size = 0;
};

Head make_head(const Pattern& p, bool ws, bool binary, std::uint32_t id, std::uint64_t seq, std::string_view prefix) {
    Head h;
    std::size_t n = 0;
    // Pattern::masked is masked as if the payload began with it: rotating the key by the prefix's length keeps that
    // shared tail valid behind a prefix of any length. Raw TCP: no key, nothing masked.
    std::array<std::uint8_t, 4> key{};
    if (ws) {
        for (std::size_t i = 0; i < key.size(); ++i) key[i] = mask_key[(i + 4 - prefix.size() % 4) % 4];
        n = put_client_header(h.bytes.data(), binary ? 2 : 1, prefix.size() + p.plain.size(), key);
    }
    std::size_t at = 0;  // payload offset
    auto put = [&](std::uint8_t b) { h.bytes[n++] = static_cast<std::uint8_t>(b ^ key[at++ % 4]); };
    for (const char ch : prefix) put(static_cast<std::uint8_t>(ch));
    for (std::size_t i = 0; i < p.tag_at; ++i) put(p.plain[i]);
    const auto tag = make_tag(id, seq);
    for (std::size_t i = 0; i < p.tag_len; ++i) put(tag[i]);
    h.size = n;
    const std::size_t tail_from = p.tag_at + p.tag_len;
    h.tail = p.masked.data() + tail_from;
    h.tail_size = p.masked.size() - tail_from;
    return h;
}

// ---------------------------------------------------------------------------------------------------------------
// --deflate: --payloads distinct messages of realistic JSON (chat messages with varying ids, timestamps, user names and
// words from a seeded PRNG), each compressed once at start (raw deflate, client_level etc. below, without its
// 00 00 ff ff tail: RFC 7692 §7.2.1) and masked once, so that sending one costs a header and a writev entry. Message
// `seq` of connection `id` carries payload (id * 7 + seq) % N; a reply is inflated (or, when the server compresses
// every message on its own, compared with the first reply of that payload that was inflated) and checked against it.
// In echo mode N is a prime above the connection count (and not 7), so at any sequence number every connection sends
// a different text and a reply crossed over to another connection fails the check; broadcast deliveries all carry
// the publish's payload and its tag sequence, and idle mode exchanges one message per connection, alone.

struct SplitMix {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

constexpr std::string_view chat_words[] = {
    "the", "a", "to", "and", "of", "is", "it", "you", "that", "in", "we", "for", "on", "this", "with", "be", "have", "are",
    "not", "but", "deploy", "build", "server", "latency", "ok", "thanks", "lunch", "meeting", "tomorrow", "review",
    "merged", "branch", "fixed", "broken", "test", "flaky", "again", "looks", "good", "ship", "it", "today", "ticket",
    "customer", "ping", "me", "later", "sounds", "great", "why", "does", "cache", "miss", "rollback", "prod", "staging",
    "coffee", "anyone", "seen", "graph", "spike", "at", "noon", "yes", "no", "maybe", "will", "check", "after", "standup"};
constexpr std::string_view chat_names[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
                                           "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent",
                                           "victor", "walter", "yasmin"};

/// `n` bytes of words (a sentence), exactly.
std::string chat_text(SplitMix& rng, std::size_t n) {
    std::string t;
    while (t.size() < n) {
        if (!t.empty()) t += ' ';
        t += chat_words[rng.below(std::size(chat_words))];
    }
    t.resize(n);
    if (!t.empty() && t.back() == ' ') t.back() = '.';
    return t;
}

/// A JSON array of chat-message objects, exactly `size` bytes (at least 2); the last object's text fills the rest.
std::string chat_json(SplitMix& rng, std::size_t size) {
    std::string out = "[";
    for (bool last = false; !last;) {
        const auto user = 1000 + rng.below(9000);
        std::string head = std::string(out.size() > 1 ? "," : "") + R"({"type":"message","id":)" +
                           std::to_string(10'000'000 + rng.below(90'000'000)) + R"(,"room":"room-)" +
                           std::to_string(rng.below(100)) + R"(","ts":)" + std::to_string(1764400000000ull + rng.below(86'400'000)) +
                           R"(,"user":{"id":)" + std::to_string(user) + R"(,"name":")" +
                           std::string(chat_names[rng.below(std::size(chat_names))]) + "_" + std::to_string(user % 97) +
                           R"("},"text":")";
        const std::string tail = std::string(R"(","edited":)") + (rng.below(8) == 0 ? "true" : "false") + "}";
        const std::size_t fixed = out.size() + head.size() + tail.size() + 1;  // + "]"
        if (fixed + 8 > size) {  // no room for another object: pad the array's end with spaces
            out.resize(size - 1, ' ');
            break;
        }
        std::size_t text = 20 + rng.below(140);
        if (fixed + text + 260 > size) {  // the last one: its text fills the rest
            text = size - fixed;
            last = true;
        }
        out += head + chat_text(rng, text) + tail;
    }
    out += "]";
    return out;
}

/// How the client compresses its messages (reported in the JSON line): level, window bits, memLevel.
constexpr int client_level = 6, client_window = 15, client_mem_level = 8;

/// Raw deflate (RFC 7692) with the settings above, sync-flushed, the trailing 00 00 ff ff removed.
#if LOADGEN_DEFLATE
std::string deflate_raw(std::string_view in) {
    z_stream z{};
    if (deflateInit2(&z, client_level, Z_DEFLATED, -client_window, client_mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        std::fprintf(stderr, "loadgen: deflateInit2 failed\n");
        std::exit(1);
    }
    std::string out(deflateBound(&z, in.size()) + 16, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in != 0) {
        std::fprintf(stderr, "loadgen: deflate failed\n");
        std::exit(1);
    }
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    if (out.size() < 4 || out.compare(out.size() - 4, 4, std::string_view("\0\0\xff\xff", 4)) != 0) {
        std::fprintf(stderr, "loadgen: deflate output does not end in 00 00 ff ff\n");
        std::exit(1);
    }
    out.resize(out.size() - 4);
    return out;
}
#else  // built without zlib: --deflate is refused in parse()
std::string deflate_raw(std::string_view) { std::exit(2); }
#endif

/// A raw inflater (15-bit window: enough for any server window) for one connection, or shared for replies compressed
/// on their own. `check` inflates one message (its 00 00 ff ff tail restored) and compares it with `want`. A DEFLATE
/// block with BFINAL set ends the stream (RFC 7692 §7.2.3.3 allows a sender to end a message so): the stream is reset
/// (the sender's next message starts a new one) and whatever follows it but our appended tail is inflated as a new
/// stream.
#if LOADGEN_DEFLATE
class Inflater {
public:
    Inflater() {
        if (inflateInit2(&z_, -15) != Z_OK) {
            std::fprintf(stderr, "loadgen: inflateInit2 failed\n");
            std::exit(1);
        }
    }
    ~Inflater() { inflateEnd(&z_); }
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    bool check(std::string& message, std::string_view want, bool reset) {
        message.append("\0\0\xff\xff", 4);
        out_.resize(want.size() + 64);
        z_.next_in = reinterpret_cast<Bytef*>(message.data());
        z_.avail_in = static_cast<uInt>(message.size());
        z_.next_out = reinterpret_cast<Bytef*>(out_.data());
        z_.avail_out = static_cast<uInt>(out_.size());
        bool ok = true;
        while (true) {
            const int r = inflate(&z_, Z_SYNC_FLUSH);
            if (r == Z_STREAM_END) {
                inflateReset(&z_);
                // Only our tail left (or nothing): the message ended with its final block.
                if (z_.avail_in == 0 || (z_.avail_in == 4 && z_.next_in == reinterpret_cast<Bytef*>(message.data() + message.size() - 4)))
                    break;
                continue;  // a new stream follows in the same message
            }
            ok = (r == Z_OK || r == Z_BUF_ERROR) && z_.avail_in == 0;
            break;
        }
        message.resize(message.size() - 4);
        const std::size_t got = out_.size() - z_.avail_out;
        ok = ok && got == want.size() && std::memcmp(out_.data(), want.data(), got) == 0;
        if (reset || !ok) inflateReset(&z_);
        return ok;
    }

private:
    z_stream z_{};
    std::string out_;
};
#else
class Inflater {
public:
    bool check(std::string&, std::string_view, bool) { return false; }
};
#endif

struct Payload {
    std::string expect;                 ///< what a reply (delivery) carries
    std::vector<std::uint8_t> zmasked;  ///< the message we send (prefix + expect), compressed and masked with mask_key
    std::vector<std::uint8_t> masked;   ///< the same uncompressed, masked (when the server declines the extension)
    std::size_t sent_size = 0;          ///< uncompressed size of what we send
    std::string reply;                  ///< a compressed reply already checked (servers compressing each on its own)
};

/// The payloads actually made (reported in the JSON line).
std::size_t payloads_used = 0;

bool is_prime(std::size_t n) {
    if (n < 2) return false;
    for (std::size_t d = 2; d * d <= n; ++d)
        if (n % d == 0) return false;
    return true;
}

/// --payloads, or in echo mode the smallest prime at least that and above --connections, other than 7 (see above).
std::size_t payload_count(const Options& o) {
    auto n = static_cast<std::size_t>(o.payloads);
    if (o.mode != "echo") return n;
    n = std::max(n, static_cast<std::size_t>(std::max(o.connections, 0)) + 1);
    while (!is_prime(n) || n == 7) ++n;
    return n;
}

struct Pool {
    std::vector<Payload> payloads;
    std::size_t sent_plain = 0, sent_compressed = 0;  ///< bytes, over all payloads (the client's ratio)
    std::size_t index(std::uint32_t id, std::uint64_t seq) const {
        return static_cast<std::size_t>((static_cast<std::uint64_t>(id) * 7 + seq) % payloads.size());
    }
};

std::unique_ptr<Pool> make_pool(const Options& o, std::string_view prefix) {
    auto pool = std::make_unique<Pool>();
    SplitMix rng{o.seed};
    payloads_used = payload_count(o);
    for (std::size_t i = 0; i < payloads_used; ++i) {
        Payload p;
        p.expect = chat_json(rng, std::max<std::size_t>(o.size, 2));
        const std::string sent = std::string(prefix) + p.expect;
        p.sent_size = sent.size();
        const std::string z = deflate_raw(sent);
        for (std::size_t k = 0; k < z.size(); ++k) p.zmasked.push_back(static_cast<std::uint8_t>(z[k]) ^ mask_key[k % 4]);
        for (std::size_t k = 0; k < sent.size(); ++k) p.masked.push_back(static_cast<std::uint8_t>(sent[k]) ^ mask_key[k % 4]);
        pool->sent_plain += sent.size();
        pool->sent_compressed += z.size();
        pool->payloads.push_back(std::move(p));
    }
    return pool;
}

/// The header of message `seq` from connection `id`: RSV1 and the compressed payload when the extension was agreed.
Head make_pool_head(const Pool& pool, bool binary, bool compressed, std::uint32_t id, std::uint64_t seq) {
    const Payload& p = pool.payloads[pool.index(id, seq)];
    const auto& body = compressed ? p.zmasked : p.masked;
    Head h;
    h.size = put_client_header(h.bytes.data(), binary ? 2 : 1, body.size(), mask_key);
    if (compressed) h.bytes[0] |= 0x40;  // RSV1: a compressed message
    h.tail = body.data();
    h.tail_size = body.size();
    return h;
}

// ---------------------------------------------------------------------------------------------------------------
// Connections

struct Conn {
    int fd = -1;
    SSL* ssl = nullptr;        ///< --tls: this connection's OpenSSL client (null: plain TCP)
    std::vector<std::uint8_t> tls_out;  ///< --tls: plaintext gathered for SSL_write, from tls_off on not yet accepted
    std::size_t tls_off = 0;
    std::uint32_t id = 0;      ///< tag id of messages we send
    std::uint32_t peer = 0;    ///< tag id of messages we expect (our own in echo, the publisher's in broadcast)
    bool counts = true;        ///< broadcast: the publisher's own copies are not deliveries
    // The tag sequence number of the n-th message received is seq_base + n * seq_stride (pubsub: a subscriber of topic
    // t of T sees publishes t, t + T, t + 2T, ...; everyone else every message).
    std::uint64_t seq_base = 0, seq_stride = 1;
    std::uint64_t tag_seq(std::uint64_t n) const { return seq_base + n * seq_stride; }
    // Sending: messages [write_seq, send_seq) are queued, the first `write_off` bytes of write_seq already written.
    std::uint64_t send_seq = 0, write_seq = 0;
    std::size_t write_off = 0;
    std::vector<Head> heads;              ///< ring, by seq % depth
    std::vector<std::int64_t> sent_at;    ///< ring, by seq % depth
    bool want_out = false;
    // Receiving
    std::uint64_t recv_seq = 0;
    std::uint64_t recv_at_open = 0;       ///< recv_seq when the measured window opened (stall detection)
    std::size_t msg_off = 0;              ///< payload bytes of the current message seen
    std::array<std::uint8_t, 14> hdr{};   ///< partial frame header
    std::size_t hdr_len = 0;
    std::uint64_t frame_left = 0;         ///< payload bytes left in the current frame
    bool in_frame = false, frame_fin = false;
    int frame_opcode = 0;
    bool control = false;                 ///< current frame is a control frame (skipped)
    bool in_message = false;              ///< a data message's first frame came without FIN: continuations follow
    // --deflate: the current message's payload as received (compressed when `zmsg`, which its first frame's RSV1
    // decides), at most `zlimit` bytes, and this connection's inflater when the server keeps its compression context
    // between messages.
    bool zmsg = false;
    std::size_t zlimit = 0;
    std::string zbuf;
    std::unique_ptr<Inflater> inflater;
};

struct Stats {
    std::uint64_t completed = 0;          ///< replies (or deliveries) completed, in total
    std::uint64_t measured = 0;           ///< in the measured window
    Histogram latency;
    std::uint64_t errors = 0;
    std::string first_error;
    std::uint64_t rx_bytes = 0, tx_bytes = 0;  ///< WebSocket bytes read and written in the measured window
    std::uint64_t compressed = 0, uncompressed = 0;  ///< --deflate: replies (deliveries) with RSV1 set and without
};

class Engine {
public:
    Engine(const Options& o, bool ws) : o_(o), ws_(ws), pattern_(make_pattern(o.size, ws, o.json)) {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) die("epoll_create1");
        rbuf_.resize(256 * 1024);
    }

    Conn& add(int fd, std::uint32_t id, std::uint32_t peer) {
        auto& c = conns_.emplace_back();
        c.fd = fd;
        c.id = id;
        c.peer = peer;
        c.heads.resize(static_cast<std::size_t>(o_.depth));
        c.sent_at.resize(static_cast<std::size_t>(o_.depth));
        return c;
    }

    /// Registers all connections with epoll (after `conns_` stops growing, so pointers stay valid).
    void arm() {
        for (auto& c : conns_) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.ptr = &c;
            if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) die("epoll_ctl");
        }
    }

    std::vector<Conn>& conns() { return conns_; }
    Stats& stats() { return stats_; }

    /// Queues the next message on `c`, after `prefix` (the caller then flushes).
    void queue(Conn& c, std::int64_t now, std::string_view prefix = {}) {
        const std::size_t slot = static_cast<std::size_t>(c.send_seq % static_cast<std::uint64_t>(o_.depth));
        c.heads[slot] = pool_ ? make_pool_head(*pool_, o_.binary, compressed_, c.id, c.send_seq)
                              : make_head(pattern_, ws_, o_.binary, c.id, c.send_seq, prefix);
        c.sent_at[slot] = now;
        ++c.send_seq;
    }

    /// Writes what is queued with writev; arms EPOLLOUT when the socket is full.
    void flush(Conn& c) {
#if LOADGEN_TLS
        if (c.ssl) return tls_flush(c);
#endif
        while (c.write_seq < c.send_seq) {
            std::array<iovec, 64> iov{};
            std::size_t n = 0;
            std::size_t off = c.write_off;
            for (std::uint64_t s = c.write_seq; s < c.send_seq && n + 2 <= iov.size(); ++s) {
                const Head& h = c.heads[static_cast<std::size_t>(s % static_cast<std::uint64_t>(o_.depth))];
                if (off < h.size) iov[n++] = {const_cast<std::uint8_t*>(h.bytes.data()) + off, h.size - off};
                const std::size_t tail_off = off > h.size ? off - h.size : 0;
                if (tail_off < h.tail_size) iov[n++] = {const_cast<std::uint8_t*>(h.tail) + tail_off, h.tail_size - tail_off};
                off = 0;
            }
            const ssize_t w = writev(c.fd, iov.data(), static_cast<int>(n));
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    set_out(c, true);
                    return;
                }
                fail(c, "write failed");
                return;
            }
            if (measuring) stats_.tx_bytes += static_cast<std::uint64_t>(w);
            auto left = static_cast<std::size_t>(w);
            while (left > 0) {
                const Head& h = c.heads[static_cast<std::size_t>(c.write_seq % static_cast<std::uint64_t>(o_.depth))];
                const std::size_t total = h.size + h.tail_size;
                const std::size_t take = std::min(left, total - c.write_off);
                c.write_off += take;
                left -= take;
                if (c.write_off == total) {
                    ++c.write_seq;
                    c.write_off = 0;
                }
            }
        }
        set_out(c, false);
    }

    /// Called for every completed reply; `on_reply` decides whether to queue another message.
    template <class OnReply>
    void run_until(std::int64_t deadline, OnReply&& on_reply, const bool& stop) {
        std::array<epoll_event, 512> events{};
        while (!stop) {
            const std::int64_t now = now_ns();
            if (now >= deadline) return;
            const int timeout_ms = static_cast<int>(std::min<std::int64_t>((deadline - now) / 1'000'000 + 1, 100));
            const int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout_ms);
            if (n < 0) {
                if (errno == EINTR) continue;
                die("epoll_wait");
            }
            for (int i = 0; i < n; ++i) {
                Conn& c = *static_cast<Conn*>(events[static_cast<std::size_t>(i)].data.ptr);
                if (c.fd < 0) continue;
                if (events[static_cast<std::size_t>(i)].events & EPOLLOUT) flush(c);
                if (events[static_cast<std::size_t>(i)].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_ready(c, on_reply);
            }
        }
    }

    void fail(Conn& c, const std::string& what) {
        ++stats_.errors;
        if (stats_.first_error.empty())
            stats_.first_error = what + " (connection " + std::to_string(c.id) + ", message " + std::to_string(c.recv_seq) + ")";
        if (c.fd >= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
            c.fd = -1;
        }
        free_tls(c);
    }

    void close_all() {
        for (auto& c : conns_) {
            if (c.fd >= 0) {
                close(c.fd);
                c.fd = -1;
            }
            free_tls(c);
        }
    }

    // Measurement window: latencies are only recorded once it opened.
    bool measuring = false;
    std::int64_t completion_time = 0;

private:
    static void free_tls([[maybe_unused]] Conn& c) {
#if LOADGEN_TLS
        if (c.ssl) {
            SSL_free(c.ssl);
            c.ssl = nullptr;
            ERR_clear_error();
        }
#endif
    }

#if LOADGEN_TLS
    /// TLS: the queued messages are gathered into one plaintext buffer and handed to SSL_write (one record per
    /// 16 KiB, each a write() on the socket BIO); WANT_WRITE arms EPOLLOUT, WANT_READ waits for the next EPOLLIN.
    void tls_flush(Conn& c) {
        if (c.tls_off == c.tls_out.size()) {
            c.tls_out.clear();
            c.tls_off = 0;
        }
        for (; c.write_seq < c.send_seq; ++c.write_seq) {
            const Head& h = c.heads[static_cast<std::size_t>(c.write_seq % static_cast<std::uint64_t>(o_.depth))];
            c.tls_out.insert(c.tls_out.end(), h.bytes.begin(), h.bytes.begin() + static_cast<std::ptrdiff_t>(h.size));
            c.tls_out.insert(c.tls_out.end(), h.tail, h.tail + h.tail_size);
        }
        while (c.tls_off < c.tls_out.size()) {
            std::size_t w = 0;
            const int r = SSL_write_ex(c.ssl, c.tls_out.data() + c.tls_off, c.tls_out.size() - c.tls_off, &w);
            if (r != 1) {
                const int e = SSL_get_error(c.ssl, r);
                if (e == SSL_ERROR_WANT_WRITE) return set_out(c, true);
                if (e == SSL_ERROR_WANT_READ) return;
                return fail(c, "SSL_write failed");
            }
            if (measuring) stats_.tx_bytes += w;  // WebSocket bytes, before encryption
            c.tls_off += w;
        }
        set_out(c, false);
    }

    /// TLS: SSL_read until WANT_READ (read-ahead may hold several records that epoll does not announce).
    template <class OnReply>
    void tls_read_ready(Conn& c, OnReply& on_reply) {
        while (c.fd >= 0) {
            std::size_t n = 0;
            const int r = SSL_read_ex(c.ssl, rbuf_.data(), rbuf_.size(), &n);
            if (r != 1) {
                const int e = SSL_get_error(c.ssl, r);
                if (e == SSL_ERROR_WANT_READ) break;
                if (e == SSL_ERROR_WANT_WRITE) {
                    set_out(c, true);
                    break;
                }
                return fail(c, e == SSL_ERROR_ZERO_RETURN ? "server closed the connection" : "SSL_read failed");
            }
            completion_time = now_ns();
            if (measuring) stats_.rx_bytes += n;  // WebSocket bytes, decrypted
            consume(c, rbuf_.data(), n, on_reply);
        }
        if (c.fd >= 0) flush(c);
    }
#endif

    void set_out(Conn& c, bool on) {
        if (c.want_out == on || c.fd < 0) return;
        c.want_out = on;
        epoll_event ev{};
        ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
        ev.data.ptr = &c;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    }

    template <class OnReply>
    void read_ready(Conn& c, OnReply& on_reply) {
#if LOADGEN_TLS
        if (c.ssl) return tls_read_ready(c, on_reply);
#endif
        while (c.fd >= 0) {
            const ssize_t n = read(c.fd, rbuf_.data(), rbuf_.size());
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                fail(c, std::string("read: ") + std::strerror(errno));
                return;
            }
            if (n == 0) {
                fail(c, "server closed the connection");
                return;
            }
            completion_time = now_ns();
            if (measuring) stats_.rx_bytes += static_cast<std::uint64_t>(n);
            consume(c, rbuf_.data(), static_cast<std::size_t>(n), on_reply);
            if (static_cast<std::size_t>(n) < rbuf_.size()) break;  // drained: save the EAGAIN read
        }
        if (c.fd >= 0) flush(c);
    }

    /// Checks payload bytes [msg_off, msg_off + len) of the message c.recv_seq.
    bool verify(Conn& c, const std::uint8_t* p, std::size_t len) {
        const std::size_t off = c.msg_off, tag_at = pattern_.tag_at, tag_end = tag_at + pattern_.tag_len;
        if (off + len > pattern_.plain.size()) return false;
        if (off + len <= tag_at || off >= tag_end) return std::memcmp(p, pattern_.plain.data() + off, len) == 0;
        // Three parts: pattern before the tag, the tag, pattern after it.
        const auto tag = make_tag(c.peer, c.tag_seq(c.recv_seq));
        const std::size_t end = off + len, a = std::max(off, tag_at), b = std::min(end, tag_end);
        return std::memcmp(p, pattern_.plain.data() + off, a - off) == 0 &&
               std::memcmp(p + (a - off), tag.data() + (a - tag_at), b - a) == 0 &&
               std::memcmp(p + (b - off), pattern_.plain.data() + b, end - b) == 0;
    }

    template <class OnReply>
    void complete(Conn& c, OnReply& on_reply) {
        const std::size_t slot = static_cast<std::size_t>(c.recv_seq % static_cast<std::uint64_t>(o_.depth));
        const std::int64_t sent = c.sent_at[slot];
        ++c.recv_seq;
        c.msg_off = 0;
        on_reply(c, sent);
    }

    template <class OnReply>
    void consume(Conn& c, const std::uint8_t* p, std::size_t n, OnReply& on_reply) {
        if (!ws_) {
            while (n > 0 && c.fd >= 0) {
                const std::size_t take = std::min(n, pattern_.plain.size() - c.msg_off);
                if (!verify(c, p, take)) return fail(c, "echoed bytes differ from what was sent");
                c.msg_off += take;
                p += take;
                n -= take;
                if (c.msg_off == pattern_.plain.size()) complete(c, on_reply);
            }
            return;
        }
        while (n > 0 && c.fd >= 0) {
            if (!c.in_frame) {  // collect the 2..10 header bytes of a server frame (never masked)
                c.hdr[c.hdr_len++] = *p++;
                --n;
                if (c.hdr_len < 2) continue;
                const std::size_t need = (c.hdr[1] & 0x7f) == 126 ? 4 : (c.hdr[1] & 0x7f) == 127 ? 10 : 2;
                if (c.hdr_len < need) continue;
                if (c.hdr[1] & 0x80) return fail(c, "server frame is masked");
                std::uint64_t len = c.hdr[1] & 0x7f;
                if (need == 4) len = static_cast<std::uint64_t>(c.hdr[2]) << 8 | c.hdr[3];
                if (need == 10) {
                    len = 0;
                    for (std::size_t i = 2; i < 10; ++i) len = len << 8 | c.hdr[i];
                }
                c.hdr_len = 0;
                c.frame_fin = (c.hdr[0] & 0x80) != 0;
                c.frame_opcode = c.hdr[0] & 0x0f;
                c.control = c.frame_opcode >= 8;
                const bool rsv1 = (c.hdr[0] & 0x40) != 0;
                if (c.hdr[0] & 0x30) return fail(c, "RSV2 or RSV3 set");
                if (c.frame_opcode == 8) return fail(c, "server sent a close frame");
                if (c.control) {
                    if (rsv1) return fail(c, "RSV1 on a control frame");
                    if (!c.frame_fin || len > 125) return fail(c, "fragmented or oversized control frame");
                } else {
                    const bool first = c.frame_opcode != 0;
                    if (first && c.in_message) return fail(c, "a new message inside a fragmented one");
                    if (!first && !c.in_message) return fail(c, "a continuation frame outside a message");
                    if (first && c.frame_opcode != (o_.binary ? 2 : 1))
                        return fail(c, std::string("unexpected opcode ").append(std::to_string(c.frame_opcode)));
                    if (rsv1 && !first) return fail(c, "RSV1 on a continuation frame");
                    if (rsv1 && !compressed_) return fail(c, "RSV1 without permessage-deflate");
                    c.in_message = !c.frame_fin;
                    if (pool_) {
                        if (first) {  // RSV1 of the first frame decides; an empty first frame does not reset it later
                            c.zmsg = rsv1;
                            const std::size_t expect = pool_->payloads[pool_->index(c.peer, c.tag_seq(c.recv_seq))].expect.size();
                            c.zlimit = expect + expect / 8 + 64;  // more than deflate can make of it
                        }
                        if (len > c.zlimit - c.zbuf.size()) return fail(c, "a reply longer than its message could compress to");
                    }
                }
                c.frame_left = len;
                c.in_frame = true;
            }
            const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, c.frame_left));
            if (pool_ && !c.control) {
                c.zbuf.append(reinterpret_cast<const char*>(p), take);
                c.msg_off += take;
            } else if (!c.control) {
                if (!verify(c, p, take)) return fail(c, "echoed payload differs from what was sent");
                c.msg_off += take;
            }
            p += take;
            n -= take;
            c.frame_left -= take;
            if (c.frame_left == 0) {
                c.in_frame = false;
                if (!c.control && c.frame_fin) {
                    if (pool_) {
                        if (!check_pooled(c)) return fail(c, c.zmsg ? "an inflated reply differs from what was sent"
                                                                    : "an uncompressed reply differs from what was sent");
                        c.zbuf.clear();
                    } else if (c.msg_off != pattern_.plain.size()) {
                        return fail(c, "reply has the wrong length");
                    }
                    complete(c, on_reply);
                }
            }
        }
    }

    /// --deflate: the reply (delivery) just completed on `c` against the payload it answers. Servers that compress each
    /// message on its own send the same bytes for the same payload: those are compared with the first such reply that
    /// was inflated and checked; otherwise (and with context takeover, always) the reply is inflated.
    bool check_pooled(Conn& c) {
        Payload& want = pool_->payloads[pool_->index(c.peer, c.tag_seq(c.recv_seq))];
        if (!c.zmsg) {
            ++stats_.uncompressed;
            return c.zbuf == want.expect;
        }
        ++stats_.compressed;
        if (deflate_answers.server_context == 0) {
            if (c.zbuf == want.reply) return true;
            if (!shared_inflater_) shared_inflater_ = std::make_unique<Inflater>();
            if (!shared_inflater_->check(c.zbuf, want.expect, true)) return false;
            want.reply = c.zbuf;
            return true;
        }
        if (!c.inflater) c.inflater = std::make_unique<Inflater>();
        return c.inflater->check(c.zbuf, want.expect, false);
    }

public:
    /// --deflate: send the pool's payloads, compressed when the extension was agreed (`compressed`).
    void use_pool(Pool* pool, bool compressed) {
        pool_ = pool;
        compressed_ = compressed;
    }

private:
    const Options& o_;
    bool ws_;
    Pattern pattern_;
    Pool* pool_ = nullptr;
    bool compressed_ = false;
    std::unique_ptr<Inflater> shared_inflater_;
    int ep_ = -1;
    std::vector<Conn> conns_;
    std::vector<std::uint8_t> rbuf_;
    Stats stats_;
};

// ---------------------------------------------------------------------------------------------------------------
// Reporting

struct Report {
    std::string mode;
    double seconds = 0;
    std::uint64_t count = 0;      ///< messages, handshakes or deliveries in the window
    double server_cpu = -1;       ///< server CPU seconds in the window
    double server_user = -1;      ///< the part of it spent in user space (the rest is the kernel's)
    double client_cpu = 0;
    const Histogram* latency = nullptr;
    std::uint64_t errors = 0;
    std::string first_error;
    long long rss_before = -1, rss_after = -1;
    int connections = 0;
    int stalled = 0;              ///< connections with messages outstanding and no reply in the whole window
    long long peak_rss = -1;      ///< the server's VmHWM at the end (memory under load)
    const Stats* stats = nullptr; ///< wire bytes, --deflate reply counts
};

/// `text` as the inside of a JSON string.
std::string json_escape(std::string_view text) {
    std::string out;
    for (const char ch : text) {
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (static_cast<unsigned char>(ch) < 0x20) {
            char u[8];
            std::snprintf(u, sizeof u, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(ch)));
            out += u;
        } else {
            out += ch;
        }
    }
    return out;
}

void print(const Options& o, const Report& r, const char* unit) {
    const double rate = r.seconds > 0 ? static_cast<double>(r.count) / r.seconds : 0;
    const double per_cpu = r.server_cpu > 0 ? static_cast<double>(r.count) / r.server_cpu : 0;
    const double p50 = r.latency ? r.latency->quantile(0.5) / 1000 : 0;
    const double p99 = r.latency ? r.latency->quantile(0.99) / 1000 : 0;
    const double p999 = r.latency ? r.latency->quantile(0.999) / 1000 : 0;
    const std::string label = json_escape(o.label), err = json_escape(r.first_error), answer = json_escape(deflate_answers.first),
                      offer = json_escape(o.deflate ? o.deflate_offer : std::string());
    const Stats none;
    const Stats& st = r.stats ? *r.stats : none;
    std::printf("{\"label\":\"%s\",\"mode\":\"%s\",\"connections\":%d,\"size\":%zu,\"depth\":%d,\"binary\":%s,\"json\":%s,"
                "\"seconds\":%.3f,\"count\":%" PRIu64 ",\"rate\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
                "\"server_cpu_s\":%.3f,\"server_user_s\":%.3f,\"per_server_cpu_s\":%.1f,\"client_cpu_s\":%.3f,"
                "\"rss_before\":%lld,\"rss_after\":%lld,\"stalled\":%d,\"peak_rss\":%lld,\"wire_rx\":%" PRIu64 ",\"wire_tx\":%" PRIu64 ","
                "\"deflate\":%s,\"deflate_offer\":\"%s\",\"deflate_accepted\":%d,\"deflate_declined\":%d,"
                "\"deflate_server_context\":%d,\"deflate_answer\":\"%s\",\"payloads\":%zu,\"seed\":%" PRIu64 ","
                "\"client_deflate\":{\"level\":%d,\"window\":%d,\"mem_level\":%d},"
                "\"compressed\":%" PRIu64 ",\"uncompressed\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"first_error\":\"%s\"}\n",
                label.c_str(), r.mode.c_str(), r.connections, o.size, o.depth, o.binary ? "true" : "false", o.json ? "true" : "false", r.seconds,
                r.count, rate, p50, p99, p999, r.server_cpu, r.server_user, per_cpu, r.client_cpu, r.rss_before, r.rss_after, r.stalled, r.peak_rss,
                st.rx_bytes, st.tx_bytes, o.deflate ? "true" : "false", offer.c_str(), deflate_answers.accepted,
                deflate_answers.declined, deflate_answers.server_context, answer.c_str(), o.deflate ? payloads_used : 0,
                o.seed, client_level, client_window, client_mem_level, st.compressed, st.uncompressed, r.errors, err.c_str());
    std::fflush(stdout);
    if (r.mode == "idle") {
        std::fprintf(stderr, "%s: %d idle connections, server RSS %.1f -> %.1f MiB = %.0f bytes per connection\n",
                     o.label.c_str(), r.connections, static_cast<double>(r.rss_before) / 1048576.0,
                     static_cast<double>(r.rss_after) / 1048576.0,
                     static_cast<double>(r.rss_after - r.rss_before) / std::max(1, r.connections));
    } else {
        std::fprintf(stderr,
                     "%s %s: %.0f %s/s over %.2f s, p50 %.0f us p99 %.0f us p99.9 %.0f us, server CPU %.2f s -> %.0f per "
                     "server CPU-s, client CPU %.2f s",
                     o.label.c_str(), r.mode.c_str(), rate, unit, r.seconds, p50, p99, p999, r.server_cpu, per_cpu, unit ? r.client_cpu : 0);
        if (r.stalled) std::fprintf(stderr, ", %d connections stalled (no reply in the window)", r.stalled);
        if (r.errors) std::fprintf(stderr, ", %" PRIu64 " errors (first: %s)", r.errors, r.first_error.c_str());
        if (o.deflate && r.count)
            std::fprintf(stderr, ", deflate %s (%" PRIu64 " compressed, %" PRIu64 " not), wire %.0f B in + %.0f B out per %s",
                         deflate_answers.accepted ? "on" : "declined", st.compressed, st.uncompressed,
                         static_cast<double>(st.rx_bytes) / static_cast<double>(r.count),
                         static_cast<double>(st.tx_bytes) / static_cast<double>(r.count), unit);
        std::fprintf(stderr, "\n");
    }
}

/// Shared by echo, raw and broadcast: warm-up, then the measured window (or a fixed message count).
struct Window {
    std::int64_t start = 0, open = 0, end = 0;
    CpuTimes cpu0, cpu1;
    double own0 = 0, own1 = 0;
    std::uint64_t count0 = 0, count1 = 0;

    /// The server's CPU time in the window, and its user-space part; -1 when /proc could not be read.
    void report_server_cpu(Report& r) const {
        if (cpu0.user < 0 || cpu1.user < 0) return;
        r.server_cpu = cpu1.total() - cpu0.total();
        r.server_user = cpu1.user - cpu0.user;
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Modes

/// --deflate: every connection got the same answer (all accepted or all declined); exits otherwise.
bool deflate_agreed() {
    if (deflate_answers.accepted > 0 && deflate_answers.declined > 0) {
        std::fprintf(stderr, "loadgen: the server accepted permessage-deflate on %d connections and declined it on %d\n",
                     deflate_answers.accepted, deflate_answers.declined);
        std::exit(1);
    }
    return deflate_answers.accepted > 0;
}

int run_echo(const Options& o, bool ws) {
    const auto addr = server_address(o);
    const auto pool = o.deflate ? make_pool(o, "") : nullptr;  // compressed before any connection
    Engine engine(o, ws);
    for (int i = 0; i < o.connections; ++i) {
#if LOADGEN_TLS
        if (o.tls) {
            const auto [fd, ssl] = open_tls_connection(o, addr, ws);
            engine.add(fd, static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i)).ssl = ssl;
            continue;
        }
#endif
        const int fd = open_connection(o, addr, ws);
        engine.add(fd, static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i));
    }
    if (pool) engine.use_pool(pool.get(), deflate_agreed());
    engine.arm();
    Stats& st = engine.stats();
    const bool fixed = o.messages > 0;
    long long budget = fixed ? o.messages : -1;  // messages still to send in fixed-count mode
    bool stop = false;
    auto send_one = [&](Conn& c, std::int64_t now) {
        if (budget == 0) return;
        if (budget > 0) --budget;
        engine.queue(c, now);
    };
    auto on_reply = [&](Conn& c, std::int64_t sent) {
        ++st.completed;
        if (engine.measuring) {
            ++st.measured;
            st.latency.add(engine.completion_time - sent);
        }
        if (fixed && st.completed >= static_cast<std::uint64_t>(o.messages)) stop = true;
        send_one(c, engine.completion_time);
    };
    Window w;
    w.start = now_ns();
    for (auto& c : engine.conns()) {
        for (int d = 0; d < o.depth; ++d) send_one(c, w.start);
        engine.flush(c);
    }
    if (fixed) {
        engine.measuring = true;
        w.cpu0 = process_cpu_times(o.pid);
        w.own0 = own_cpu_seconds();
        w.open = now_ns();
        engine.run_until(w.open + 600'000'000'000, on_reply, stop);
    } else {
        engine.run_until(w.start + static_cast<std::int64_t>(o.warmup * 1e9), on_reply, stop);
        for (auto& c : engine.conns()) c.recv_at_open = c.recv_seq;
        engine.measuring = true;
        w.cpu0 = process_cpu_times(o.pid);
        w.own0 = own_cpu_seconds();
        w.open = now_ns();
        engine.run_until(w.open + static_cast<std::int64_t>(o.duration * 1e9), on_reply, stop);
    }
    w.end = now_ns();
    w.cpu1 = process_cpu_times(o.pid);
    w.own1 = own_cpu_seconds();
    const long long peak_rss = process_rss_bytes(o.pid, "VmHWM:");
    engine.close_all();

    Report r;
    r.mode = ws ? "echo" : "raw";
    r.connections = o.connections;
    r.peak_rss = peak_rss;
    if (!fixed)
        for (const auto& c : engine.conns())
            r.stalled += c.send_seq > c.recv_seq && c.recv_seq == c.recv_at_open;
    r.seconds = static_cast<double>(w.end - w.open) / 1e9;
    r.count = st.measured;
    w.report_server_cpu(r);
    r.client_cpu = w.own1 - w.own0;
    r.latency = &st.latency;
    r.errors = st.errors;
    r.first_error = st.first_error;
    r.stats = &st;
    if (fixed && st.completed < static_cast<std::uint64_t>(o.messages) && r.errors == 0) {
        r.errors = 1;
        r.first_error = "timed out before all messages were echoed";
    }
    print(o, r, "msg");
    return r.errors == 0 && r.count > 0 ? 0 : 1;
}

/// Set-up exchanges before a measured run (subscriptions; idle mode's one message): blocking I/O on a non-blocking
/// socket, at most 10 s per wait. `what` names the exchange in the message of the error that ends the run.
[[noreturn]] void setup_failed(const std::string& what, const char* why) {
    std::fprintf(stderr, "loadgen: %s: %s\n", what.c_str(), why);
    std::exit(1);
}

void wait_fd(int fd, short events, const std::string& what) {
    pollfd p{fd, events, 0};
    if (poll(&p, 1, 10'000) != 1) setup_failed(what, "no progress in 10 s");
}

void blocking_write(int fd, std::string_view out, const std::string& what) {
    for (std::size_t off = 0; off < out.size();) {
        const ssize_t w = write(fd, out.data() + off, out.size() - off);
        if (w > 0) off += static_cast<std::size_t>(w);
        else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) wait_fd(fd, POLLOUT, what);
        else if (w < 0 && errno == EINTR) continue;
        else setup_failed(what, w < 0 ? std::strerror(errno) : "write wrote nothing");
    }
}

/// One whole server frame: its first header byte (FIN, RSV1-3, opcode) and its payload.
struct ServerFrame {
    std::uint8_t b0 = 0;
    std::string payload;
};

/// Reads one whole (unmasked, at most 64 MiB) server frame from `fd`; bytes read beyond it stay in `in` for the next.
ServerFrame blocking_read_frame(int fd, std::string& in, const std::string& what) {
    std::size_t header = 0, need = 0;
    while (need == 0 || in.size() < need) {
        if (need == 0 && in.size() >= 2) {
            const auto b1 = static_cast<std::uint8_t>(in[1]);
            if (b1 & 0x80) setup_failed(what, "the server masked its frame");
            header = (b1 & 0x7f) == 126 ? 4 : (b1 & 0x7f) == 127 ? 10 : 2;
            if (in.size() >= header) {
                std::uint64_t len = b1 & 0x7f;
                if (header > 2) {
                    len = 0;
                    for (std::size_t i = 2; i < header; ++i) len = len << 8 | static_cast<std::uint8_t>(in[i]);
                }
                if (len > (64u << 20)) setup_failed(what, "a frame over 64 MiB");
                need = header + static_cast<std::size_t>(len);
                continue;
            }
        }
        char buf[65536];
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            in.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0) {
            setup_failed(what, "the server closed the connection");
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait_fd(fd, POLLIN, what);
        } else if (errno != EINTR) {
            setup_failed(what, std::strerror(errno));
        }
    }
    ServerFrame f{static_cast<std::uint8_t>(in[0]), in.substr(header, need - header)};
    in.erase(0, need);
    return f;
}

/// Pub/sub set-up, before the measured run: subscriber i (of N) subscribes to "t<i % topics>" and to "idle<j>" for
/// j = i, i + N, ... below --idle-topics; every connection sends all its requests first, then each is read back
/// (a text frame "subscribed <topic>", in order, nothing else).
void subscribe_all(const Options& o, std::vector<Conn>& subscribers, int topics) {
    const auto n = subscribers.size();
    // (Strings are appended to, not built with "literal" + string: g++ 12 -O3 warns there, -Wrestrict.)
    auto topics_of = [&](std::size_t i) {
        std::vector<std::string> names{std::string("t").append(std::to_string(i % static_cast<std::size_t>(topics)))};
        for (std::size_t j = i; j < static_cast<std::size_t>(o.idle_topics); j += n)
            names.push_back(std::string("idle").append(std::to_string(j)));
        return names;
    };
    auto what = [](std::size_t i, const std::string& topic) {
        return std::string("connection ").append(std::to_string(i)).append(": subscribe ").append(topic);
    };
    for (std::size_t i = 0; i < n; ++i) {
        std::string out;
        const auto names = topics_of(i);
        for (const auto& topic : names) out += client_frame(1, std::string("subscribe ").append(topic));
        blocking_write(subscribers[i].fd, out, what(i, names.front()));
    }
    for (std::size_t i = 0; i < n; ++i) {
        std::string in;
        for (const auto& topic : topics_of(i)) {
            const ServerFrame f = blocking_read_frame(subscribers[i].fd, in, what(i, topic));
            if (f.b0 != 0x81 || f.payload != std::string("subscribed ").append(topic))
                setup_failed(what(i, topic), "expected a text frame \"subscribed <topic>\", got another frame");
        }
        if (!in.empty()) setup_failed(what(i, "..."), "unexpected bytes after its subscriptions");
    }
}

/// Broadcast and pub/sub: --subscribers connections and one publisher. Broadcast: "publish <payload>", delivered to
/// every connection (the publisher's own copies are checked, not counted). Pub/sub: "publish t<k % topics> <payload>",
/// delivered to that topic's subscribers only. At most --depth publishes are outstanding (not yet seen by all of their
/// subscribers); each delivery is verified (the tag carries the publish's sequence number).
int run_fanout(const Options& o) {
    const bool pubsub = o.mode == "pubsub";
    const int topics = pubsub ? o.topics : 1;
    const auto depth = static_cast<std::uint64_t>(o.depth);
    const auto addr = server_address(o);
    const auto publisher_id = static_cast<std::uint32_t>(o.subscribers);
    const auto pool = o.deflate ? make_pool(o, "publish ") : nullptr;  // compressed before any connection
    Engine engine(o, true);
    std::vector<std::string> prefixes;  // by topic
    std::vector<int> members;           // subscribers per topic
    for (int t = 0; t < topics; ++t) {
        prefixes.push_back(pubsub ? std::string("publish t").append(std::to_string(t)).append(" ") : "publish ");
        members.push_back(o.subscribers / topics + (t < o.subscribers % topics ? 1 : 0));
    }
    for (int i = 0; i < o.subscribers; ++i) {
        auto& c = engine.add(open_connection(o, addr, true), static_cast<std::uint32_t>(i), publisher_id);
        c.seq_base = static_cast<std::uint64_t>(i % topics);
        c.seq_stride = static_cast<std::uint64_t>(topics);
    }
    if (pubsub) subscribe_all(o, engine.conns(), topics);
    {
        auto& pub = engine.add(open_connection(o, addr, true), publisher_id, publisher_id);
        pub.counts = false;
    }
    if (pool) engine.use_pool(pool.get(), deflate_agreed());
    engine.arm();
    Conn* publisher = &engine.conns().back();
    Stats& st = engine.stats();
    // Per outstanding publish (ring by seq % depth): subscribers that still have to receive it.
    std::vector<int> pending(static_cast<std::size_t>(depth), 0);
    std::uint64_t next_publish = 0, done = 0;  // published / fully delivered
    bool stop = false;
    auto publish = [&](std::int64_t now) {
        while (next_publish - done < depth) {
            const auto topic = static_cast<std::size_t>(next_publish % static_cast<std::uint64_t>(topics));
            pending[static_cast<std::size_t>(next_publish % depth)] = members[topic];
            engine.queue(*publisher, now, prefixes[topic]);
            ++next_publish;
        }
        engine.flush(*publisher);
    };
    auto on_reply = [&](Conn& c, std::int64_t) {
        if (!c.counts) {  // broadcast: the publisher's own copy; pubsub: it follows no topic, so nothing may reach it
            if (pubsub) engine.fail(c, "the publisher, subscribed to nothing, received a publish");
            return;
        }
        const std::uint64_t seq = c.tag_seq(c.recv_seq - 1);  // the publish just delivered
        ++st.completed;
        if (engine.measuring) {
            ++st.measured;
            st.latency.add(engine.completion_time - publisher->sent_at[static_cast<std::size_t>(seq % depth)]);
        }
        if (--pending[static_cast<std::size_t>(seq % depth)] == 0) {
            while (done < next_publish && pending[static_cast<std::size_t>(done % depth)] == 0) ++done;
            publish(engine.completion_time);
        }
    };
    Window w;
    w.start = now_ns();
    publish(w.start);
    engine.run_until(w.start + static_cast<std::int64_t>(o.warmup * 1e9), on_reply, stop);
    engine.measuring = true;
    w.cpu0 = process_cpu_times(o.pid);
    w.own0 = own_cpu_seconds();
    w.open = now_ns();
    engine.run_until(w.open + static_cast<std::int64_t>(o.duration * 1e9), on_reply, stop);
    w.end = now_ns();
    w.cpu1 = process_cpu_times(o.pid);
    w.own1 = own_cpu_seconds();
    const long long peak_rss = process_rss_bytes(o.pid, "VmHWM:");
    engine.close_all();

    Report r;
    r.mode = o.mode;
    r.peak_rss = peak_rss;
    r.connections = o.subscribers + 1;
    r.seconds = static_cast<double>(w.end - w.open) / 1e9;
    r.count = st.measured;
    w.report_server_cpu(r);
    r.client_cpu = w.own1 - w.own0;
    r.latency = &st.latency;
    r.errors = st.errors;
    r.first_error = st.first_error;
    r.stats = &st;
    print(o, r, "deliveries");
    return r.errors == 0 && r.count > 0 ? 0 : 1;
}

/// Handshake loops: connect → upgrade → send close → read the server's close → half-close → wait for EOF → close.
int run_handshake(const Options& o) {
    const auto addr = server_address(o);
    const std::string request = upgrade_request(o);
    const std::string close_frame = client_frame(8, std::string_view("\x03\xe8", 2));  // code 1000, no reason
    enum class State { connecting, tls, response, closing, eof };
    struct Loop {
        int fd = -1;
        SSL* ssl = nullptr;  // --tls
        State state = State::connecting;
        std::string in;
        std::int64_t started = 0;
    };
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<Loop> loops(static_cast<std::size_t>(o.concurrency));
    Histogram latency;
    std::uint64_t completed = 0, measured = 0, errors = 0;
    std::string first_error;
    bool measuring = false;

    auto start = [&](Loop& l) {
        l.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (l.fd < 0) die("socket");
        set_nodelay(l.fd);
        l.state = State::connecting;
        l.in.clear();
        l.started = now_ns();
        if (connect(l.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) die("connect");
        epoll_event ev{};
        ev.events = EPOLLOUT | EPOLLIN;
        ev.data.ptr = &l;
        epoll_ctl(ep, EPOLL_CTL_ADD, l.fd, &ev);
    };
    auto finish = [&](Loop& l, const char* error) {
        epoll_ctl(ep, EPOLL_CTL_DEL, l.fd, nullptr);
        close(l.fd);
#if LOADGEN_TLS
        if (l.ssl) {
            SSL_free(l.ssl);
            l.ssl = nullptr;
            ERR_clear_error();
        }
#endif
        if (error) {
            ++errors;
            if (first_error.empty()) first_error = error;
        } else {
            ++completed;
            if (measuring) {
                ++measured;
                latency.add(now_ns() - l.started);
            }
        }
        start(l);
    };
    auto interest = [&](Loop& l, std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = &l;
        epoll_ctl(ep, EPOLL_CTL_MOD, l.fd, &ev);
    };
    // Plain: write()/read(). TLS: SSL_write_ex/SSL_read_ex, read returning -1 for "nothing yet" (WANT_READ), 0 for
    // the end (close_notify or EOF), -2 for an error.
    auto send_bytes = [&](Loop& l, const void* p, std::size_t n) {
#if LOADGEN_TLS
        if (l.ssl) {
            std::size_t w = 0;
            return SSL_write_ex(l.ssl, p, n, &w) == 1 && w == n;
        }
#endif
        return write(l.fd, p, n) == static_cast<ssize_t>(n);
    };
    auto receive = [&](Loop& l, char* p, std::size_t n) -> ssize_t {
#if LOADGEN_TLS
        if (l.ssl) {
            std::size_t got = 0;
            const int r = SSL_read_ex(l.ssl, p, n, &got);
            if (r == 1) return static_cast<ssize_t>(got);
            const int e = SSL_get_error(l.ssl, r);
            if (e == SSL_ERROR_WANT_READ) return -1;
            if (e == SSL_ERROR_ZERO_RETURN) return 0;
            return -2;
        }
#endif
        const ssize_t r = read(l.fd, p, n);
        return r >= 0 ? r : (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
    };
    auto step = [&](Loop& l, std::uint32_t events) {
        if (l.state == State::connecting) {
            if (!(events & EPOLLOUT)) return;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(l.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) return finish(l, "connect failed");
#if LOADGEN_TLS
            if (o.tls) {
                l.ssl = new_tls(o, l.fd);
                l.state = State::tls;
            }
#endif
            if (!l.ssl) {
                if (!send_bytes(l, request.data(), request.size())) return finish(l, "request write failed");
                l.state = State::response;
                interest(l, EPOLLIN);
                return;
            }
        }
#if LOADGEN_TLS
        if (l.state == State::tls) {
            const int r = SSL_connect(l.ssl);
            if (r != 1) {
                const int e = SSL_get_error(l.ssl, r);
                if (e == SSL_ERROR_WANT_READ) return interest(l, EPOLLIN);
                if (e == SSL_ERROR_WANT_WRITE) return interest(l, EPOLLOUT);
                return finish(l, "TLS handshake failed");
            }
            interest(l, EPOLLIN);
            if (o.no_upgrade) {  // TLS alone: close_notify, half-close, wait for the server's end
                SSL_shutdown(l.ssl);
                shutdown(l.fd, SHUT_WR);
                l.state = State::eof;
            } else {
                if (!send_bytes(l, request.data(), request.size())) return finish(l, "request write failed");
                l.state = State::response;
            }
        }
#endif
        char buf[4096];
        while (true) {
            const ssize_t n = receive(l, buf, sizeof buf);
            if (n == -1) return;
            if (n < 0) return finish(l, l.state == State::eof ? nullptr : "read failed");
            if (n == 0) return finish(l, l.state == State::eof ? nullptr : "server closed early");
            l.in.append(buf, static_cast<std::size_t>(n));
            if (l.state == State::response) {
                const auto end = l.in.find("\r\n\r\n");
                if (end == std::string::npos) continue;
                if (!valid_upgrade_response(std::string_view(l.in).substr(0, end + 4))) return finish(l, "handshake refused");
                l.in.erase(0, end + 4);
                if (!send_bytes(l, close_frame.data(), close_frame.size())) return finish(l, "close write failed");
                l.state = State::closing;
            }
            if (l.state == State::closing) {
                // The server's close frame: 0x88, length (<126, unmasked), payload.
                if (l.in.size() < 2) continue;
                const auto b0 = static_cast<std::uint8_t>(l.in[0]), b1 = static_cast<std::uint8_t>(l.in[1]);
                if (b0 != 0x88 || (b1 & 0x80) || (b1 & 0x7f) > 125) return finish(l, "expected the server's close frame");
                if (l.in.size() < 2u + (b1 & 0x7fu)) continue;
#if LOADGEN_TLS
                if (l.ssl) SSL_shutdown(l.ssl);  // close_notify before the FIN
#endif
                shutdown(l.fd, SHUT_WR);
                l.state = State::eof;
                l.in.clear();
            }
        }
    };

    Window w;
    w.start = now_ns();
    for (auto& l : loops) start(l);
    std::array<epoll_event, 512> events{};
    auto run = [&](std::int64_t deadline) {
        while (true) {
            const std::int64_t now = now_ns();
            if (now >= deadline) return;
            const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()),
                                     static_cast<int>(std::min<std::int64_t>((deadline - now) / 1'000'000 + 1, 100)));
            for (int i = 0; i < n; ++i)
                step(*static_cast<Loop*>(events[static_cast<std::size_t>(i)].data.ptr), events[static_cast<std::size_t>(i)].events);
        }
    };
    run(w.start + static_cast<std::int64_t>(o.warmup * 1e9));
    measuring = true;
    w.cpu0 = process_cpu_times(o.pid);
    w.own0 = own_cpu_seconds();
    w.open = now_ns();
    run(w.open + static_cast<std::int64_t>(o.duration * 1e9));
    w.end = now_ns();
    w.cpu1 = process_cpu_times(o.pid);
    w.own1 = own_cpu_seconds();
    for (auto& l : loops) {
        close(l.fd);
#if LOADGEN_TLS
        if (l.ssl) SSL_free(l.ssl);
#endif
    }

    Report r;
    r.mode = "handshake";
    r.connections = o.concurrency;
    r.seconds = static_cast<double>(w.end - w.open) / 1e9;
    r.count = measured;
    w.report_server_cpu(r);
    r.client_cpu = w.own1 - w.own0;
    r.latency = &latency;
    r.errors = errors;
    r.first_error = first_error;
    print(o, r, "handshakes");
    return errors == 0 && measured > 0 ? 0 : 1;
}

/// Idle mode with --exchange or --deflate: sends one pooled message on `fd` and reads its echo (blocking, at most
/// 10 s per wait), so the server holds whatever a connection that has exchanged a message keeps (its codecs, say).
/// Exits on an error.
void exchange_one(const Pool& pool, bool compressed, int fd, std::uint32_t id) {
    const Head h = make_pool_head(pool, false, compressed, id, 0);
    std::string out(reinterpret_cast<const char*>(h.bytes.data()), h.size);
    out.append(reinterpret_cast<const char*>(h.tail), h.tail_size);
    const std::string what = std::string("idle --exchange: connection ").append(std::to_string(id));
    blocking_write(fd, out, what);
    std::string in;
    ServerFrame f = blocking_read_frame(fd, in, what);
    const Payload& want = pool.payloads[pool.index(id, 0)];
    const bool rsv1 = (f.b0 & 0x40) != 0;
    if ((f.b0 & 0x80) == 0 || (f.b0 & 0x0f) != 1) setup_failed(what, "the echo is not one unfragmented text frame");
    if ((f.b0 & 0x30) != 0 || (rsv1 && !compressed)) setup_failed(what, "RSV bits the extension does not allow");
    if (!in.empty()) setup_failed(what, "bytes after the echo");
    if (rsv1 ? !Inflater().check(f.payload, want.expect, true) : f.payload != want.expect)
        setup_failed(what, "the echo differs from the message");
}

/// Opens 100 connections (allocator warm-up), reads RSS, opens --connections more, holds, reads RSS again. With
/// --exchange every connection first exchanges one message (with --deflate, compressed: the codecs it keeps are then
/// counted).
int run_idle(const Options& o) {
    const auto addr = server_address(o);
    const auto pool = o.deflate || o.exchange ? make_pool(o, "") : nullptr;
    std::vector<int> fds;
    auto open = [&](std::uint32_t id) {
        fds.push_back(open_connection(o, addr, true));
        if (pool) exchange_one(*pool, deflate_agreed(), fds.back(), id);
    };
    for (int i = 0; i < 100; ++i) open(static_cast<std::uint32_t>(i));
    usleep(300'000);
    Report r;
    r.mode = "idle";
    r.connections = o.connections;
    r.rss_before = process_rss_bytes(o.pid);
    for (int i = 0; i < o.connections; ++i) open(static_cast<std::uint32_t>(100 + i));
    usleep(static_cast<useconds_t>(o.hold * 1e6));
    r.rss_after = process_rss_bytes(o.pid);
    // Every connection must still be open: a non-blocking read must find nothing (EAGAIN) or the server's heartbeat
    // ping (a frame starting 0x89; over TLS, any record), not EOF, an error or a close frame. The connections do not
    // answer pings: keep `--hold` below the server's pong timeout.
    for (const int fd : fds) {
        unsigned char b = 0;
        const ssize_t n = read(fd, &b, 1);
        const bool open = n < 0 ? errno == EAGAIN || errno == EWOULDBLOCK : n == 1 && (o.tls || b == 0x89);
        if (!open) {
            ++r.errors;
            if (r.first_error.empty()) r.first_error = "a held connection was closed by the server";
        }
    }
    for (const int fd : fds) close(fd);
    r.count = static_cast<std::uint64_t>(o.connections);
    print(o, r, "");
    return r.errors == 0 && r.rss_before > 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    raise_fd_limit();
    std::signal(SIGPIPE, SIG_IGN);
#if LOADGEN_TLS
    if (o.tls) init_tls(o);
#endif
    if (o.mode == "echo") return run_echo(o, true);
    if (o.mode == "raw") return run_echo(o, false);
    if (o.mode == "handshake") return run_handshake(o);
    if (o.mode == "broadcast" || o.mode == "pubsub") return run_fanout(o);
    if (o.mode == "idle") return run_idle(o);
    usage(2);
}
