#include "daemon/config.hpp"

#include "daemon/log.hpp"

#include <grp.h>
#include <pwd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>

namespace hbsd::daemon {
namespace {

class Reader {
  public:
    explicit Reader(std::string file) : file_(std::move(file)) {}

    [[noreturn]] void fail(const toml::source_region& at, const std::string& message) const {
        std::ostringstream s;
        s << file_ << ':' << at.begin.line << ':' << at.begin.column << ": " << message;
        throw ConfigError(s.str());
    }

    std::string where(const toml::source_region& at) const {
        return file_ + ":" + std::to_string(at.begin.line);
    }

    // Refuses any key of `t` not in `known`.
    void only(const toml::table& t, std::string_view table_name,
              std::initializer_list<std::string_view> known) const {
        for (auto&& [k, v] : t) {
            bool ok = false;
            for (auto n : known) ok = ok || n == k.str();
            if (!ok)
                fail(k.source(),
                     "unknown key '" + std::string(k.str()) + "' in " + std::string(table_name));
        }
    }

    const toml::table& table(const toml::node& n, std::string_view name) const {
        if (!n.is_table()) fail(n.source(), std::string(name) + " must be a table");
        return *n.as_table();
    }

    std::string string(const toml::node& n, std::string_view name) const {
        if (!n.is_string()) fail(n.source(), std::string(name) + " must be a string");
        std::string s = n.as_string()->get();
        if (s.empty()) fail(n.source(), std::string(name) + " must not be empty");
        return s;
    }

    template <class T>
    T unsigned_int(const toml::node& n, std::string_view name, T min = 0,
                   T max = std::numeric_limits<T>::max()) const {
        if (!n.is_integer()) fail(n.source(), std::string(name) + " must be an integer");
        const std::int64_t v = n.as_integer()->get();
        if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max)
            fail(n.source(), std::string(name) + " must be between " + std::to_string(min) +
                                 " and " + std::to_string(max));
        return static_cast<T>(v);
    }

  private:
    std::string file_;
};

uid_t resolve_user(const Reader& r, const toml::node& n) {
    if (n.is_integer()) return r.unsigned_int<uid_t>(n, "user", 0, 0x7fffffff);
    const std::string name = r.string(n, "user");
    passwd pw{}, *res = nullptr;
    std::vector<char> buf(16384);
    if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || !res)
        r.fail(n.source(), "no such user '" + name + "'");
    return pw.pw_uid;
}

gid_t resolve_group(const Reader& r, const toml::node& n, std::string_view what) {
    if (n.is_integer()) return r.unsigned_int<gid_t>(n, what, 0, 0x7fffffff);
    const std::string name = r.string(n, what);
    group gr{}, *res = nullptr;
    std::vector<char> buf(65536);
    if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res) != 0 || !res)
        r.fail(n.source(), "no such group '" + name + "'");
    return gr.gr_gid;
}

void read_modules(const Reader& r, const toml::node& n, Config& c) {
    const auto* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables()) r.fail(n.source(), "module must be [[module]] tables");
    for (const auto& e : *arr) {
        const auto& t = *e.as_table();
        r.only(t, "[[module]]", {"name", "path"});
        if (!t.contains("name")) r.fail(t.source(), "[[module]] needs name");
        if (!t.contains("path")) r.fail(t.source(), "[[module]] needs path");
        hsm::ModuleConfig m{r.string(*t.get("name"), "name"), r.string(*t.get("path"), "path")};
        if (m.path.front() != '/') r.fail(t.get("path")->source(), "module path must be absolute");
        for (const auto& other : c.modules)
            if (other.name == m.name)
                r.fail(t.get("name")->source(), "duplicate module name '" + m.name + "'");
        c.modules.push_back(std::move(m));
    }
}

void read_token_mapping(const Reader& r, const toml::node& n, Config& c) {
    const auto* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables())
        r.fail(n.source(), "token_mapping must be [[token_mapping]] tables");
    for (const auto& e : *arr) {
        const auto& t = *e.as_table();
        r.only(t, "[[token_mapping]]", {"reader", "token_serial", "module"});
        hsm::pcsc::ReaderMapping m;
        if (const auto* v = t.get("reader")) m.reader = r.string(*v, "token_mapping.reader");
        if (const auto* v = t.get("token_serial"))
            m.token_serial = r.string(*v, "token_mapping.token_serial");
        const auto* mod = t.get("module");
        if (!mod) r.fail(t.source(), "[[token_mapping]] needs module = \"<[[module]] name>\"");
        m.module = r.string(*mod, "token_mapping.module");
        if (m.reader.empty() && m.token_serial.empty())
            r.fail(t.source(), "[[token_mapping]] needs a reader (name or glob) or a token_serial");
        // A mapping to a module that is not loaded would silently never apply.
        if (!std::ranges::any_of(c.modules, [&](const auto& x) { return x.name == m.module; }))
            r.fail(mod->source(), "token_mapping.module '" + m.module +
                                      "' names no [[module]] (modules come first in the file)");
        c.token_mapping.push_back(std::move(m));
    }
}

void read_socket(const Reader& r, const toml::node& n, Config& c) {
    const auto& t = r.table(n, "[socket]");
    r.only(t, "[socket]", {"path", "mode", "group"});
    if (const auto* p = t.get("path")) {
        c.socket.path = r.string(*p, "socket.path");
        if (c.socket.path.front() != '/')
            r.fail(p->source(), "socket.path must be an absolute path");
    }
    if (const auto* m = t.get("mode")) {
        // 0o660 in TOML, or the string "0660" that people write out of habit.
        if (m->is_string()) {
            const std::string s = m->as_string()->get();
            std::size_t used = 0;
            unsigned long v = 0;
            try {
                v = std::stoul(s, &used, 8);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != s.size() || v > 0777)
                r.fail(m->source(), "socket.mode must be octal, e.g. 0o660");
            c.socket.mode = static_cast<unsigned>(v);
        } else {
            c.socket.mode = r.unsigned_int<unsigned>(*m, "socket.mode", 0, 0777);
        }
    }
    if (const auto* g = t.get("group")) {
        c.socket.group = r.string(*g, "socket.group");
        (void)resolve_group(r, *g, "socket.group");
    }
}

void read_limits(const Reader& r, const toml::node& n, Config& c) {
    const auto& t = r.table(n, "[limits]");
    r.only(t, "[limits]",
           {"max_frame_bytes", "max_document_bytes", "max_depth", "max_connections", "max_inflight",
            "idle_timeout_s", "session_ttl_s", "session_ttl_max_s", "max_batch_items",
            "worker_threads", "idempotency_entries"});
    auto& l = c.limits;
    auto get = [&](std::string_view key, auto& field, std::uint64_t min, std::uint64_t max) {
        using T = std::remove_reference_t<decltype(field)>;
        if (const auto* v = t.get(key))
            field = r.unsigned_int<T>(*v, key, static_cast<T>(min), static_cast<T>(max));
    };
    get("max_frame_bytes", l.max_frame_bytes, 1024, 1u << 30);
    get("max_document_bytes", l.max_document_bytes, 1024, 1u << 30);
    get("max_depth", l.max_depth, 4, 1024);
    get("max_connections", l.max_connections, 1, 100000);
    get("max_inflight", l.max_inflight, 1, 100000);
    get("idle_timeout_s", l.idle_timeout_s, 1, 86400);
    get("session_ttl_s", l.session_ttl_s, 1, 7 * 86400);
    get("session_ttl_max_s", l.session_ttl_max_s, 1, 7 * 86400);
    get("max_batch_items", l.max_batch_items, 1, 1000000);
    get("worker_threads", l.worker_threads, 1, 256);
    get("idempotency_entries", l.idempotency_entries, 0, 10000000);
    if (l.session_ttl_s > l.session_ttl_max_s)
        r.fail(t.source(), "session_ttl_s must not exceed session_ttl_max_s");
    if (l.max_document_bytes > l.max_frame_bytes)
        r.fail(t.source(), "max_document_bytes must not exceed max_frame_bytes");
}

void read_access(const Reader& r, const toml::node& n, Config& c) {
    const auto* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables()) r.fail(n.source(), "access must be [[access]] tables");
    for (const auto& e : *arr) {
        const auto& t = *e.as_table();
        r.only(t, "[[access]]", {"user", "group", "capabilities"});
        AccessRule rule;
        rule.origin = r.where(t.source());
        const auto* u = t.get("user");
        const auto* g = t.get("group");
        if ((u == nullptr) == (g == nullptr))
            r.fail(t.source(), "[[access]] needs exactly one of user or group");
        if (u) rule.uid = resolve_user(r, *u);
        if (g) rule.gid = resolve_group(r, *g, "group");
        const auto* caps = t.get("capabilities");
        if (!caps || !caps->is_array()) r.fail(t.source(), "[[access]] needs capabilities = [...]");
        for (const auto& cap : *caps->as_array()) {
            const std::string s = r.string(cap, "capability");
            auto k = capability_from_name(s);
            if (!k) r.fail(cap.source(), "unknown capability '" + s + "' (read, sign, admin)");
            rule.capabilities |= closure(*k);
        }
        c.access.push_back(std::move(rule));
    }
}

void read_pin_cache(const Reader& r, const toml::node& n, Config& c) {
    const auto& t = r.table(n, "[pin_cache]");
    r.only(t, "[pin_cache]", {"enabled", "ttl_s", "max_entries"});
    auto& p = c.pin_cache;
    if (const auto* v = t.get("enabled")) {
        if (!v->is_boolean()) r.fail(v->source(), "pin_cache.enabled must be true or false");
        p.enabled = v->as_boolean()->get();
    }
    // A day at most: a PIN is consent, and consent given yesterday is not today's.
    if (const auto* v = t.get("ttl_s"))
        p.ttl_s = r.unsigned_int<unsigned>(*v, "pin_cache.ttl_s", 1, 86400);
    // Every entry is a slot of locked memory (pin_cache.hpp).
    if (const auto* v = t.get("max_entries"))
        p.max_entries = r.unsigned_int<unsigned>(*v, "pin_cache.max_entries", 1, 1024);
}

std::string absolute_path(const Reader& r, const toml::node& n, std::string_view name) {
    std::string s = r.string(n, name);
    if (s.front() != '/') r.fail(n.source(), std::string(name) + " must be an absolute path");
    return s;
}

}  // namespace

Config parse_config(std::string_view text, const std::string& source_name) {
    Reader r(source_name);
    toml::table root;
    try {
        root = toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        r.fail(e.source(), std::string(e.description()));
    }
    r.only(root, "the top level",
           {"module", "socket", "limits", "access", "trust_anchors", "crl_files", "state_dir",
            "registry_checks", "token_mapping", "pin_cache", "log_level"});
    Config c;
    if (const auto* n = root.get("module")) read_modules(r, *n, c);
    if (const auto* n = root.get("token_mapping")) read_token_mapping(r, *n, c);
    if (const auto* n = root.get("socket")) read_socket(r, *n, c);
    if (const auto* n = root.get("limits")) read_limits(r, *n, c);
    if (const auto* n = root.get("access")) read_access(r, *n, c);
    if (const auto* n = root.get("pin_cache")) read_pin_cache(r, *n, c);
    if (const auto* n = root.get("trust_anchors"))
        c.trust_anchors = absolute_path(r, *n, "trust_anchors");
    if (const auto* n = root.get("crl_files")) {
        if (!n->is_array()) r.fail(n->source(), "crl_files must be an array of paths");
        for (const auto& f : *n->as_array())
            c.crl_files.push_back(absolute_path(r, f, "crl_files"));
    }
    if (const auto* n = root.get("state_dir")) c.state_dir = absolute_path(r, *n, "state_dir");
    if (const auto* n = root.get("registry_checks")) {
        if (!n->is_boolean()) r.fail(n->source(), "registry_checks must be true or false");
        c.registry_checks = n->as_boolean()->get();
    }
    if (const auto* n = root.get("log_level")) {
        c.log_level = r.string(*n, "log_level");
        if (!log::level_from_name(c.log_level))
            r.fail(n->source(), "log_level must be \"error\", \"warning\", \"info\" or \"debug\"");
    }
    return c;
}

Config load_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot open");
    std::ostringstream s;
    s << in.rdbuf();
    return parse_config(s.str(), path);
}

}  // namespace hbsd::daemon
