#pragma once
// Shared by the TLS tests: a throwaway PKI made at test time by the openssl program (SWIRL_OPENSSL, else `openssl`
// on PATH) in a temporary directory removed at exit. No OpenSSL or Asio headers: the program does the work.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace test {

/// The openssl program: SWIRL_OPENSSL, else `openssl` on PATH.
inline std::string openssl_program() {
    const char* env = std::getenv("SWIRL_OPENSSL");
    return env && *env ? env : "openssl";
}

/// Whether the openssl program runs (the TLS tests need it to make their certificates).
inline bool openssl_available() {
    static const bool available = std::system(("'" + openssl_program() + "' version >/dev/null 2>&1").c_str()) == 0;
    return available;
}

/// A throwaway PKI: a CA, server certificates for 127.0.0.1 and localhost, client certificates, and a second CA.
class Certs {
public:
    Certs() {
        namespace fs = std::filesystem;
        std::random_device rd;
        dir_ = fs::temp_directory_path() / ("swirl-tls-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        fs::create_directories(dir_);
        openssl_ = openssl_program();
        std::ofstream(path("openssl.cnf")) << "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
                                              "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
                                              "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
                                              "[server]\nbasicConstraints = CA:FALSE\n"
                                              "subjectAltName = IP:127.0.0.1,DNS:localhost\nextendedKeyUsage = serverAuth\n"
                                              "[client]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n";
        make_ca("ca", "/CN=Swirl Test CA");
        make_ca("other-ca", "/CN=Some Other CA");
        make_leaf("server", "/CN=localhost", "server", "ca", 2);
        make_leaf("server2", "/CN=reloaded.localhost", "server", "ca", 3);
        make_leaf("client", "/O=Swirl Tests/CN=alice", "client", "ca", 4);
        make_leaf("intruder", "/CN=mallory", "client", "other-ca", 5);
    }
    ~Certs() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    Certs(const Certs&) = delete;
    Certs& operator=(const Certs&) = delete;

    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    const std::filesystem::path& dir() const { return dir_; }

private:
    void openssl(const std::string& args) const {
        const std::string cmd = "'" + openssl_ + "' " + args + " >/dev/null 2>&1";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
    }
    std::string q(const std::string& name) const { return "'" + path(name) + "'"; }
    void make_ca(const std::string& name, const std::string& subject) const {
        openssl("req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -config " +
                q("openssl.cnf") + " -extensions v3_ca -subj '" + subject + "' -keyout " + q(name + ".key") +
                " -out " + q(name + ".crt"));
    }
    void make_leaf(const std::string& name, const std::string& subject, const std::string& ext, const std::string& ca,
                   int serial) const {
        openssl("req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -config " + q("openssl.cnf") +
                " -subj '" + subject + "' -keyout " + q(name + ".key") + " -out " + q(name + ".csr"));
        openssl("x509 -req -days 2 -in " + q(name + ".csr") + " -CA " + q(ca + ".crt") + " -CAkey " + q(ca + ".key") +
                " -set_serial " + std::to_string(serial) + " -extfile " + q("openssl.cnf") + " -extensions " + ext +
                " -out " + q(name + ".crt"));
    }

    std::filesystem::path dir_;
    std::string openssl_;
};

/// The process's PKI, made on first use.
inline const Certs& certs() {
    static const Certs c;
    return c;
}

} // namespace test
