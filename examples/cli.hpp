#pragma once
// Shared by the examples: `--flag value` parsing, the "listening on" line, and SIGINT/SIGTERM handling.

#include <swirl.hpp>

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace examples {

class Cli {
public:
    /// `known` lists the flags beyond --host and --port, each taking one value.
    Cli(int argc, char** argv, std::vector<std::string_view> known) {
        known.push_back("--host");
        known.push_back("--port");
        for (int i = 1; i < argc; ++i) {
            const std::string_view flag = argv[i];
            if (flag == "--help" || flag == "-h") usage(argv[0], known, 0);
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

    /// Host and port from the command line (defaults 127.0.0.1:9501).
    swirl::Settings settings() const {
        swirl::Settings s;
        s.host = get("--host", "127.0.0.1");
        s.port = static_cast<std::uint16_t>(number("--port", 9501));
        return s;
    }

private:
    [[noreturn]] static void usage(const char* program, const std::vector<std::string_view>& known, int status) {
        fmt::print(status == 0 ? stdout : stderr, "usage: {}", program);
        for (const auto flag : known) fmt::print(status == 0 ? stdout : stderr, " [{} VALUE]", flag);
        fmt::print(status == 0 ? stdout : stderr, "\n");
        std::exit(status);
    }

    std::multimap<std::string, std::string> values_;
    std::vector<std::string> subprotocols_;
};

/// Listens, prints `listening on ws://HOST:PORT`, runs until SIGINT/SIGTERM, then shuts down gracefully.
template <class Server>
int serve(Server& server) {
    try {
        server.listen();
    } catch (const std::exception& e) {
        fmt::print(stderr, "cannot listen on {}:{}: {}\n", server.settings().host, server.settings().port, e.what());
        return 1;
    }
    const auto endpoint = server.local_endpoint();
    fmt::print("listening on ws://{}:{}\n", endpoint.address().to_string(), endpoint.port());
    std::fflush(stdout);
    asio::signal_set signals(server.context(), SIGINT, SIGTERM);
    signals.async_wait([&server](std::error_code ec, int) {
        if (!ec) server.stop();
    });
    server.run();
    return 0;
}

} // namespace examples
