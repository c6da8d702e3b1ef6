// The administration sub-commands of hbsctl: registry (certificates, assignments, year locks),
// records, the audit log and the archive (vn.hocbaso.SignerAdmin.GetArchived).
#pragma once

#include "protocol/client.hpp"

#include <CLI/CLI.hpp>
#include <functional>

namespace hbsd::hbsctl {

// Adds the sub-commands to `app`; the chosen one sets `action`. `json` is read when the action
// runs (after parsing), so it may be bound to the global --json flag.
void add_admin_commands(CLI::App& app, const bool& json,
                        std::function<int(protocol::Client&)>& action);

}  // namespace hbsd::hbsctl
