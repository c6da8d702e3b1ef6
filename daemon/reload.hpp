// SIGHUP: what a new hbsd.toml may change in a running daemon, and what it may not.
//
// As sshd and PostgreSQL do, a reload first reads and checks the whole new file (and the trust
// anchors and CRLs it names); a bad file changes nothing. A good one goes into force as one
// snapshot (Services::replace), except for the settings that the running process cannot change
// without a restart, which keep their running values and are named in a warning:
//
//   reload at once                          need a restart (kept)
//   [[access]] rules (next call on any      [socket] path, mode, group
//     connection, open ones included)       state_dir (the database)
//   [limits] max_document_bytes, max_depth, [[module]] list and paths
//     max_batch_items, max_inflight,        [limits] worker_threads, idempotency_entries
//     max_connections, idle_timeout_s,      [[token_mapping]] when there was none at start
//     session_ttl_s, session_ttl_max_s        (no PC/SC watcher runs), or naming a module
//     (new sessions), max_frame_bytes           that is not loaded
//     (new connections)
//   registry_checks, log_level
//   [[token_mapping]], trust_anchors, crl_files
//
// Calls already running keep the snapshot they started with; sessions, connections and
// WatchEvents streams are untouched.
#pragma once

#include "daemon/config.hpp"

#include <string>
#include <vector>

namespace hbsd::daemon {

struct ReloadPlan {
    // The new file's settings, with every restart-only setting at its running value.
    Config config;
    // One line per restart-only setting the file changes: "<setting> needs a restart, keeping
    // <running value>".
    std::vector<std::string> kept;
    // One line per reloadable setting that changes, for the log.
    std::vector<std::string> changed;
    // The [[token_mapping]] in force changes (the tokens present are to be looked at again).
    bool token_mapping_changed = false;
};

// Pure: compares `running` with `fresh` (both already parsed and checked).
ReloadPlan plan_reload(const Config& running, Config fresh);

}  // namespace hbsd::daemon
