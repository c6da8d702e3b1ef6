// The schema, as an ordered list of migrations. Migration i takes PRAGMA user_version from
// i-1 to i. Append new migrations; never edit one that has shipped.
#pragma once

namespace hbsd::store {

class Database;

// Applies every pending migration in one IMMEDIATE transaction (all or none), so a crash
// mid-upgrade leaves the old schema intact. Throws Internal for a file newer than this build.
void migrate(Database& db);
int latest_schema_version() noexcept;

}  // namespace hbsd::store
