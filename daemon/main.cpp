// hbsd: the signing daemon.
//   hbsd [--config PATH]                 serve (foreground; systemd Type=notify)
//   hbsd --check-config [--config PATH]  parse and check the configuration, then exit
//   hbsd --dev --socket PATH             development mode (see devmode.hpp)
#include "daemon/audit_hook.hpp"
#include "daemon/config.hpp"
#include "daemon/devmode.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/log.hpp"
#include "daemon/server.hpp"
#include "daemon/services.hpp"
#include "daemon/token_watch.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

namespace {

using namespace hbsd::daemon;

int serve(Config config, Server::Options options,
          const std::function<void(Services&)>& before_serving) {
    auto trust = load_trust(config);
    auto tokens = std::make_unique<hbsd::hsm::TokenManager>(config.modules);
    Services services(std::move(config), std::move(tokens), std::move(trust));
    // Opened (and migrated) before the socket listens: a call must never find no store.
    services.store = std::make_unique<hbsd::store::Store>(
        hbsd::store::Store::open(std::filesystem::path(services.config()->state_dir) / "hbsd.db"));
    Dispatcher dispatcher(audit_refusals(services));
    // PC/SC readers and cards ([[token_mapping]]); outlives the server, whose workers read it.
    TokenWatch token_watch(services);
    {
        Server server(services, dispatcher, options);
        server.listen();
        // On this thread, before the I/O loop: connections made meanwhile wait in the backlog.
        if (before_serving) before_serving(services);
        server.run();
    }
    log::info("stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"hbsd - signing appliance for digital school records (Hoc ba so)", "hbsd"};
    std::string config_path(kDefaultConfigPath);
    std::optional<std::string> socket_path;
    bool check = false, dev = false, verbose = false;
    app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
    app.add_flag("--check-config", check, "check the configuration and exit (0: good)");
    app.add_option("--socket", socket_path, "socket path (overrides [socket] path)");
    app.add_flag("--dev", dev,
                 "development mode: demo PKI and SoftHSM2 token in a temporary directory; "
                 "prints one JSON line, then serves until SIGTERM/SIGINT");
    app.add_flag("-v,--verbose", verbose, "debug log lines");
    app.set_version_flag("--version", HBSD_VERSION);
    CLI11_PARSE(app, argc, argv);
    log::set_verbose(verbose);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        if (dev) {
            if (!socket_path) {
                std::fprintf(stderr, "hbsd: --dev needs --socket PATH\n");
                return 2;
            }
            std::vector<uid_t> grant{::getuid()};
            // Under sudo, the person who typed the command is the one to serve.
            if (const char* sudo = std::getenv("SUDO_UID"))
                grant.push_back(static_cast<uid_t>(std::strtoul(sudo, nullptr, 10)));
            devmode::DevEnvironment env({*socket_path, HBSD_SOFTHSM2_MODULE, grant});
            log::info("dev mode: state in %s", env.directory().c_str());
            // No system-wide D-Bus name for a throw-away daemon; no file to reload either.
            const Server::Options dev_options{.status_bus = false, .reload_config = {}};
            return serve(env.config(), dev_options, [&](Services& s) {
                // The demo school's registry, so that the demo signs with every check on.
                env.provision_registry(*s.store);
                // Printed once the socket exists: a script may connect right after reading it.
                std::cout << env.announcement(*s.tokens) << std::endl;
            });
        }
        // The same reading for start-up and for every SIGHUP, --socket included, so that a
        // reload does not mistake the command line's socket for a change in the file.
        auto read_config = [config_path, socket_path] {
            Config c = load_config(config_path);
            if (socket_path) c.socket.path = *socket_path;
            return c;
        };
        Config config = read_config();
        log::set_level(*log::level_from_name(config.log_level));
        if (check) {
            // The trust anchors and CRLs are files too: load them as the daemon would.
            const auto trust = load_trust(config);
            std::printf(
                "%s: ok (%zu modules, %zu token mappings, %zu access rules, %zu trust anchors)\n",
                config_path.c_str(), config.modules.size(), config.token_mapping.size(),
                config.access.size(), trust ? trust->root_count() : std::size_t{0});
            return 0;
        }
        return serve(std::move(config), {.status_bus = true, .reload_config = read_config}, {});
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "hbsd: %s\n", e.what());
        return 1;
    } catch (const hbsd::Error& e) {
        // Internal errors carry their cause in the detail, which belongs in this message.
        std::fprintf(stderr, "hbsd: %s\n", e.detail().empty() ? e.what() : e.detail().c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hbsd: %s\n", e.what());
        return 1;
    }
}
