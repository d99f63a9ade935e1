#pragma once
// Shared by the examples: `--flag value` parsing, the "listening on" line, and SIGINT/SIGTERM handling.

#include <swirl.hpp>
#if SWIRL_TLS
#include <swirl/server/tls_context.hpp>
#endif

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace examples {

class Cli {
public:
    /// `known` lists the flags beyond the common ones below, each taking one value.
    Cli(int argc, char** argv, std::vector<std::string_view> known) {
        known.insert(known.end(), {"--host", "--port", "--threads", "--max-connections", "--max-output-buffer",
                                   "--pause-reading-above", "--backpressure", "--idle-timeout", "--ping-interval", "--pong-timeout",
                                   "--close-timeout", "--task-threads", "--task-queue-size", "--log-level", "--tls-cert", "--tls-key", "--tls-port", "--tls-ca",
                                   "--tls-verify", "--deflate-window", "--deflate-mem-level", "--deflate-level",
                                   "--deflate-threshold"});
        for (int i = 1; i < argc; ++i) {
            const std::string_view flag = argv[i];
            if (flag == "--help" || flag == "-h") usage(argv[0], known, 0);
            if (flag == "--deflate" || flag.starts_with("--deflate=")) {  // the one flag whose value is optional
                values_.emplace("--deflate", flag == "--deflate" ? std::string("shared") : std::string(flag.substr(10)));
                continue;
            }
            if (std::find(known.begin(), known.end(), flag) == known.end() || i + 1 == argc) usage(argv[0], known, 2);
            values_.emplace(std::string(flag), argv[++i]);
            if (flag != "--subprotocol") continue;
            subprotocols_.push_back(argv[i]);
        }
    }

    std::string get(const std::string& flag, std::string fallback) const {
        const auto it = values_.find(flag);
        return it == values_.end() ? fallback : it->second;
    }
    double number(const std::string& flag, double fallback) const {
        const auto it = values_.find(flag);
        return it == values_.end() ? fallback : std::strtod(it->second.c_str(), nullptr);
    }
    const std::vector<std::string>& subprotocols() const { return subprotocols_; }

    /// The common flags: --host (127.0.0.1), --port (9501), --threads (1), --max-connections,
    /// --max-output-buffer BYTES, --pause-reading-above BYTES, --backpressure reject|close, --idle-timeout SECONDS,
    /// --ping-interval MS, --pong-timeout MS, --close-timeout SECONDS, --task-threads N, --task-queue-size N,
    /// --log-level debug|info|warning|error|off; unset flags keep `swirl::Settings`' defaults.
    swirl::Settings settings() const {
        swirl::Settings s;
        s.host = get("--host", "127.0.0.1");
        s.port = static_cast<std::uint16_t>(number("--port", 9501));
        s.threads = static_cast<unsigned>(number("--threads", 1));
        s.max_connections = static_cast<std::size_t>(number("--max-connections", static_cast<double>(s.max_connections)));
        s.max_output_buffer =
            static_cast<std::size_t>(number("--max-output-buffer", static_cast<double>(s.max_output_buffer)));
        s.pause_reading_above = static_cast<std::size_t>(number("--pause-reading-above", static_cast<double>(s.pause_reading_above)));
        if (get("--backpressure", "reject") == "close") s.backpressure = swirl::BackpressurePolicy::close_connection;
        s.idle_timeout = std::chrono::milliseconds(static_cast<long>(number("--idle-timeout", 0) * 1000));
        s.ping_interval = std::chrono::milliseconds(static_cast<long>(number("--ping-interval", static_cast<double>(s.ping_interval.count()))));
        s.pong_timeout = std::chrono::milliseconds(static_cast<long>(number("--pong-timeout", static_cast<double>(s.pong_timeout.count()))));
        s.close_timeout = std::chrono::milliseconds(
            static_cast<long>(number("--close-timeout", static_cast<double>(s.close_timeout.count()) / 1000) * 1000));
        s.task_threads = static_cast<unsigned>(number("--task-threads", s.task_threads));
        s.task_queue_size = static_cast<std::size_t>(number("--task-queue-size", static_cast<double>(s.task_queue_size)));
        const std::string level = get("--log-level", "info");
        constexpr std::pair<std::string_view, swirl::LogLevel> levels[] = {
            {"debug", swirl::LogLevel::debug}, {"info", swirl::LogLevel::info}, {"warning", swirl::LogLevel::warning},
            {"error", swirl::LogLevel::error}, {"off", swirl::LogLevel::off}};
        for (const auto& [name, value] : levels)
            if (level == name) s.log_level = value;
        apply_deflate(s);
        return s;
    }

    /// --deflate[=shared|dedicated] [--deflate-window BITS] [--deflate-mem-level MEM] [--deflate-level LEVEL]
    /// [--deflate-threshold BYTES]: permessage-deflate with shared codecs per event loop, or dedicated ones per
    /// connection (compressor and decompressor); BITS (8..15, default 15) is the compressor's window and the one asked
    /// of clients, with memLevel BITS - 7 (uWebSockets' DEDICATED_COMPRESSOR sizes: 9 is 4 KB, 12 is 32 KB, 15 is
    /// 256 KB) unless MEM (1..9) sets it; LEVEL is zlib's level (0..9, default `CompressOptions::level`); messages
    /// shorter than BYTES go uncompressed (default 1024, 0: compress everything). Without --deflate the extension is
    /// declined.
    void apply_deflate(swirl::Settings& s) const {
        const std::string mode = get("--deflate", "");
        if (mode.empty()) return;
        const auto fail = [](std::string_view why) {
            fmt::print(stderr, "{}\n", why);
            std::exit(2);
        };
        if (mode != "shared" && mode != "dedicated") fail("--deflate: shared or dedicated");
        if (!swirl::deflate_available) fail("--deflate: this build has no zlib (Meson option deflate, zlib1g-dev)");
        const double bits = number("--deflate-window", 15);
        if (bits < 8 || bits > 15) fail("--deflate-window: 8..15");
        s.compression.enabled = true;
        const swirl::CodecMode codec = mode == "shared" ? swirl::CodecMode::shared : swirl::CodecMode::dedicated;
        s.compression.compressor = s.compression.decompressor = codec;
        s.compression.window_bits = s.compression.client_window_bits = static_cast<std::uint8_t>(bits);
        const double mem_level = number("--deflate-mem-level", std::max(1.0, bits - 7));
        if (mem_level < 1 || mem_level > 9) fail("--deflate-mem-level: 1..9");
        s.compression.mem_level = static_cast<int>(mem_level);
        const double level = number("--deflate-level", s.compression.level);
        if (level < 0 || level > 9) fail("--deflate-level: 0..9");
        s.compression.level = static_cast<int>(level);
        const double threshold = number("--deflate-threshold", static_cast<double>(s.compression.threshold));
        if (threshold < 0) fail("--deflate-threshold: 0 or more bytes");
        s.compression.threshold = static_cast<std::size_t>(threshold);
    }

    /// --tls-cert FILE --tls-key FILE [--tls-port PORT (9502)] [--tls-ca FILE [--tls-verify optional|required]]:
    /// a wss listener on --host beside the ws one, same handlers. Without --tls-cert, nothing.
    template <class Server>
    void add_tls_listener(Server& server) const {
        if (get("--tls-cert", "").empty() && get("--tls-key", "").empty()) return;
#if SWIRL_TLS
        swirl::TlsSettings tls;
        tls.cert_file = get("--tls-cert", "");
        tls.key_file = get("--tls-key", "");
        tls.ca_file = get("--tls-ca", "");
        const std::string verify = get("--tls-verify", tls.ca_file.empty() ? "none" : "required");
        if (verify == "optional") tls.verify_client = swirl::VerifyClient::optional;
        else if (verify == "required") tls.verify_client = swirl::VerifyClient::required;
        else if (verify != "none") throw std::invalid_argument("--tls-verify: none, optional or required");
        swirl::ListenOptions options;
        options.host = get("--host", "127.0.0.1");
        options.port = static_cast<std::uint16_t>(number("--tls-port", 9502));
        options.tls = std::make_shared<swirl::TlsContext>(tls);
        server.add_listener(options);
#else
        (void)server;
        throw std::runtime_error("--tls-cert: this build has no TLS (Meson option tls, libssl-dev)");
#endif
    }

private:
    [[noreturn]] static void usage(const char* program, const std::vector<std::string_view>& known, int status) {
        fmt::print(status == 0 ? stdout : stderr, "usage: {} [--deflate[=shared|dedicated]]", program);
        for (const auto flag : known) fmt::print(status == 0 ? stdout : stderr, " [{} VALUE]", flag);
        fmt::print(status == 0 ? stdout : stderr, "\n");
        std::exit(status);
    }

    std::multimap<std::string, std::string> values_;
    std::vector<std::string> subprotocols_;
};

/// `serve`'s loop: SIGHUP reloads the TLS certificates; SIGINT or SIGTERM stop the server gracefully (the library
/// does that: `Settings::stop_on_signals`, on from `listen()`).
template <class Server>
void serve_until_stopped(Server& server) {
    asio::signal_set hangup(server.context(), SIGHUP);
    std::function<void(std::error_code, int)> reload = [&](std::error_code ec, int) {
        if (ec) return;
        try {
            server.reload_tls();
            fmt::print(stderr, "TLS certificates reloaded\n");
        } catch (const std::exception& e) {
            fmt::print(stderr, "TLS reload failed, the old certificates stay: {}\n", e.what());
        }
        hangup.async_wait(reload);
    };
    hangup.async_wait(reload);
    server.on_stop([&hangup] {  // the pending wait would keep run() from returning
        std::error_code ignored;
        hangup.cancel(ignored);
    });
    const auto endpoints = server.local_endpoints();
    for (std::size_t i = 0; i < endpoints.size(); ++i)
        fmt::print("listening on {}://{}:{}\n", server.is_tls_listener(i) ? "wss" : "ws",
                   endpoints[i].address().to_string(), endpoints[i].port());
    std::fflush(stdout);
    server.run();
}

/// Listens (adding the wss listener the flags ask for), prints `listening on ws://HOST:PORT` (and `wss://`), runs
/// until SIGINT/SIGTERM, then shuts down gracefully. SIGHUP re-reads the TLS certificates (after a renewal).
template <class Server>
int serve(Server& server, const Cli& cli) {
    try {
        cli.add_tls_listener(server);
        server.listen();
    } catch (const std::exception& e) {
        fmt::print(stderr, "cannot listen on {}:{}: {}\n", server.settings().host, server.settings().port, e.what());
        return 1;
    }
    serve_until_stopped(server);  // a second SIGINT or SIGTERM meanwhile is caught by the server, and ignored
    return 0;
}

} // namespace examples
