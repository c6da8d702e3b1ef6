#include "daemon/reload.hpp"

#include <algorithm>
#include <sstream>

namespace hbsd::daemon {
namespace {

std::string octal(unsigned mode) {
    std::ostringstream s;
    s << '0' << std::oct << mode;
    return s.str();
}

std::string modules_text(const std::vector<hsm::ModuleConfig>& modules) {
    if (modules.empty()) return "none";
    std::string s;
    for (const auto& m : modules) s += (s.empty() ? "" : ", ") + m.name + " (" + m.path + ")";
    return s;
}

bool same_modules(const std::vector<hsm::ModuleConfig>& a,
                  const std::vector<hsm::ModuleConfig>& b) {
    return std::ranges::equal(
        a, b, [](const auto& x, const auto& y) { return x.name == y.name && x.path == y.path; });
}

bool same_mapping(const std::vector<hsm::pcsc::ReaderMapping>& a,
                  const std::vector<hsm::pcsc::ReaderMapping>& b) {
    return std::ranges::equal(a, b, [](const auto& x, const auto& y) {
        return x.reader == y.reader && x.token_serial == y.token_serial && x.module == y.module;
    });
}

bool same_access(const std::vector<AccessRule>& a, const std::vector<AccessRule>& b) {
    // `origin` (file:line) is only where a rule was written: moving it is no change.
    return std::ranges::equal(a, b, [](const auto& x, const auto& y) {
        return x.uid == y.uid && x.gid == y.gid && x.capabilities == y.capabilities;
    });
}

std::string list_text(const std::vector<std::string>& v) {
    if (v.empty()) return "none";
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

}  // namespace

ReloadPlan plan_reload(const Config& running, Config fresh) {
    ReloadPlan p;
    auto keep = [&](auto& field, const auto& value, const std::string& name,
                    const std::string& shown) {
        if (field == value) return;
        p.kept.push_back(name + " needs a restart, keeping " + shown);
        field = value;
    };
    auto note = [&](const auto& before, const auto& after, const std::string& name) {
        if (before == after) return;
        std::ostringstream s;
        s << name << ": " << before << " -> " << after;
        p.changed.push_back(s.str());
    };

    // What the process was built with: the listening socket, the open database, the loaded
    // modules, the worker pool and the in-memory idempotency table.
    keep(fresh.socket.path, running.socket.path, "socket.path", running.socket.path);
    keep(fresh.socket.mode, running.socket.mode, "socket.mode", octal(running.socket.mode));
    keep(fresh.socket.group, running.socket.group, "socket.group",
         running.socket.group.value_or("(none)"));
    keep(fresh.state_dir, running.state_dir, "state_dir", running.state_dir);
    if (!same_modules(fresh.modules, running.modules)) {
        p.kept.push_back("[[module]] needs a restart, keeping " + modules_text(running.modules));
        fresh.modules = running.modules;
    }
    keep(fresh.limits.worker_threads, running.limits.worker_threads, "limits.worker_threads",
         std::to_string(running.limits.worker_threads));
    keep(fresh.limits.idempotency_entries, running.limits.idempotency_entries,
         "limits.idempotency_entries", std::to_string(running.limits.idempotency_entries));
    // The PIN cache is built once (its locked memory sized by max_entries); cached PINs must
    // not outlive a reload that turns it off, so it is restart-only as a whole.
    keep(fresh.pin_cache.enabled, running.pin_cache.enabled, "pin_cache.enabled",
         running.pin_cache.enabled ? "true" : "false");
    keep(fresh.pin_cache.ttl_s, running.pin_cache.ttl_s, "pin_cache.ttl_s",
         std::to_string(running.pin_cache.ttl_s));
    keep(fresh.pin_cache.max_entries, running.pin_cache.max_entries, "pin_cache.max_entries",
         std::to_string(running.pin_cache.max_entries));

    // [[token_mapping]]: the PC/SC watcher runs only if there was a mapping at start-up, and a
    // mapping can only name a module that is loaded.
    if (!same_mapping(fresh.token_mapping, running.token_mapping)) {
        std::string why;
        if (running.token_mapping.empty())
            why =
                "[[token_mapping]] needs a restart when there was none at start-up (no PC/SC "
                "watcher runs), keeping none";
        for (const auto& m : fresh.token_mapping)
            if (why.empty() && !std::ranges::any_of(fresh.modules, [&](const auto& x) {
                    return x.name == m.module;
                }))
                why = "[[token_mapping]] names module '" + m.module +
                      "', which is not loaded: needs a restart, keeping the running "
                      "[[token_mapping]]";
        if (why.empty()) {
            p.token_mapping_changed = true;
            p.changed.push_back(
                "[[token_mapping]]: " + std::to_string(running.token_mapping.size()) + " -> " +
                std::to_string(fresh.token_mapping.size()) + " entries");
        } else {
            p.kept.push_back(why);
            fresh.token_mapping = running.token_mapping;
        }
    }

    if (!same_access(running.access, fresh.access))
        p.changed.push_back("[[access]]: " + std::to_string(running.access.size()) + " -> " +
                            std::to_string(fresh.access.size()) + " rules");
    const auto& a = running.limits;
    const auto& b = fresh.limits;
    note(a.max_frame_bytes, b.max_frame_bytes, "limits.max_frame_bytes (new connections)");
    note(a.max_document_bytes, b.max_document_bytes, "limits.max_document_bytes");
    note(a.max_depth, b.max_depth, "limits.max_depth");
    note(a.max_connections, b.max_connections, "limits.max_connections");
    note(a.max_inflight, b.max_inflight, "limits.max_inflight");
    note(a.idle_timeout_s, b.idle_timeout_s, "limits.idle_timeout_s");
    note(a.session_ttl_s, b.session_ttl_s, "limits.session_ttl_s (new sessions)");
    note(a.session_ttl_max_s, b.session_ttl_max_s, "limits.session_ttl_max_s (new sessions)");
    note(a.max_batch_items, b.max_batch_items, "limits.max_batch_items");
    note(std::string(running.registry_checks ? "on" : "off"),
         std::string(fresh.registry_checks ? "on" : "off"), "registry_checks");
    note(running.log_level, fresh.log_level, "log_level");
    note(running.trust_anchors.value_or("none"), fresh.trust_anchors.value_or("none"),
         "trust_anchors");
    note(list_text(running.crl_files), list_text(fresh.crl_files), "crl_files");
    p.config = std::move(fresh);
    return p;
}

}  // namespace hbsd::daemon
